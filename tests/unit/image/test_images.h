// Encoders and byte-level helpers that build test images in-process, so the image tests need no
// checked-in binaries. Test-only; the encoders abort the test binary on encoder failure.
#ifndef CROPSHIELD_TESTS_UNIT_IMAGE_TEST_IMAGES_H_
#define CROPSHIELD_TESTS_UNIT_IMAGE_TEST_IMAGES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace cropshield::image::test_images {

// Interleaved RGB8 pixels plus their size.
struct Rgb {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;

  const uint8_t* at(int x, int y) const {
    return &pixels[(static_cast<size_t>(y) * width + x) * 3];
  }
};

Rgb SolidImage(int width, int height, uint8_t r, uint8_t g, uint8_t b);
// Smooth colour ramps, nothing sharp: survives lossy codecs with small errors.
Rgb GradientImage(int width, int height);

// TurboJPEG tjCompress2. `subsampling` is a TJSAMP_* value.
std::string EncodeJpeg(const Rgb& image, int quality, int subsampling);
// TurboJPEG tjCompress2 from CMYK pixels: a 4-component YCCK JPEG with an Adobe APP14 segment.
// The samples are stored as given, so readers (PIL, this server) take them as inverted Adobe CMYK:
// 255 = no ink.
std::string EncodeJpegCmyk(int width, int height, const std::vector<uint8_t>& stored_cmyk,
                           int quality, int subsampling);
// Inserts an APP1 Exif segment carrying `orientation` right after SOI, in a TIFF structure of the
// given byte order, with a few unrelated IFD0 entries before the Orientation one.
std::string AddExifOrientation(const std::string& jpeg, int orientation, bool big_endian);
// Replaces the dimensions in the first SOF marker (the data no longer matches: for header tests).
std::string PatchJpegSize(const std::string& jpeg, int width, int height);

// libpng writer. `samples` are rows of PNG samples exactly as the format stores them (16-bit
// samples big-endian, low bit depths packed), i.e. png_write_image input.
struct PngSpec {
  int width = 0;
  int height = 0;
  int color_type = 2;  // PNG_COLOR_TYPE_*
  int bit_depth = 8;
  bool interlaced = false;
  std::vector<uint8_t> samples;
  std::vector<uint8_t> palette;  // RGB triples, for color_type 3
  std::vector<uint8_t> trns;     // raw tRNS chunk payload (alpha per palette entry, or colour)
};
std::string EncodePng(const PngSpec& spec);
std::string EncodePngRgb(const Rgb& image);
// A minimal PNG header (signature + IHDR) claiming the given size, with no image data.
std::string PngHeaderOnly(uint32_t width, uint32_t height);

std::string EncodeWebpLossless(const Rgb& image);
std::string EncodeWebpLossy(const Rgb& image, float quality);

std::string ReadFileOrDie(const std::string& path);

}  // namespace cropshield::image::test_images

#endif  // CROPSHIELD_TESTS_UNIT_IMAGE_TEST_IMAGES_H_
