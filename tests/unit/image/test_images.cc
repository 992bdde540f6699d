#include "tests/unit/image/test_images.h"

#include <png.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace cropshield::image::test_images {
namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "test image helper failed: %s\n", what.c_str());
  std::abort();
}

void AppendU16(std::string* s, uint16_t v, bool big_endian) {
  if (big_endian) {
    s->push_back(static_cast<char>(v >> 8));
    s->push_back(static_cast<char>(v & 0xFF));
  } else {
    s->push_back(static_cast<char>(v & 0xFF));
    s->push_back(static_cast<char>(v >> 8));
  }
}

void AppendU32(std::string* s, uint32_t v, bool big_endian) {
  if (big_endian) {
    AppendU16(s, static_cast<uint16_t>(v >> 16), true);
    AppendU16(s, static_cast<uint16_t>(v & 0xFFFF), true);
  } else {
    AppendU16(s, static_cast<uint16_t>(v & 0xFFFF), false);
    AppendU16(s, static_cast<uint16_t>(v >> 16), false);
  }
}

uint32_t Crc32(const std::string& data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char byte : data) {
    crc ^= byte;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

// libpng calls these instead of longjmp-ing: an encoder failure is a broken test, not a case
// under test.
void PngWriteError(png_structp, png_const_charp message) { Die(std::string("libpng: ") + message); }
void PngWriteWarning(png_structp, png_const_charp) {}
void PngWriteToString(png_structp png, png_bytep data, size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<char*>(data), length);
}
void PngFlush(png_structp) {}

}  // namespace

Rgb SolidImage(int width, int height, uint8_t r, uint8_t g, uint8_t b) {
  Rgb image{width, height, {}};
  image.pixels.reserve(static_cast<size_t>(width) * height * 3);
  for (int i = 0; i < width * height; ++i) {
    image.pixels.push_back(r);
    image.pixels.push_back(g);
    image.pixels.push_back(b);
  }
  return image;
}

Rgb GradientImage(int width, int height) {
  Rgb image{width, height, {}};
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &image.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(40 + 170 * x / std::max(1, width - 1));
      p[1] = static_cast<uint8_t>(200 - 150 * y / std::max(1, height - 1));
      p[2] = static_cast<uint8_t>(60 + 60 * (x + y) / std::max(1, width + height - 2));
    }
  }
  return image;
}

std::string EncodeJpeg(const Rgb& image, int quality, int subsampling) {
  tjhandle handle = tjInitCompress();
  if (handle == nullptr) Die("tjInitCompress");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (tjCompress2(handle, image.pixels.data(), image.width, image.width * 3, image.height, TJPF_RGB,
                  &buffer, &size, subsampling, quality, TJFLAG_ACCURATEDCT) != 0) {
    Die(std::string("tjCompress2: ") + tjGetErrorStr2(handle));
  }
  std::string jpeg(reinterpret_cast<char*>(buffer), size);
  tjFree(buffer);
  tjDestroy(handle);
  return jpeg;
}

std::string EncodeJpegCmyk(int width, int height, const std::vector<uint8_t>& stored_cmyk,
                           int quality, int subsampling) {
  if (stored_cmyk.size() != static_cast<size_t>(width) * height * 4) Die("CMYK buffer size");
  tjhandle handle = tjInitCompress();
  if (handle == nullptr) Die("tjInitCompress");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  if (tjCompress2(handle, stored_cmyk.data(), width, width * 4, height, TJPF_CMYK, &buffer, &size,
                  subsampling, quality, TJFLAG_ACCURATEDCT) != 0) {
    Die(std::string("tjCompress2: ") + tjGetErrorStr2(handle));
  }
  std::string jpeg(reinterpret_cast<char*>(buffer), size);
  tjFree(buffer);
  tjDestroy(handle);
  return jpeg;
}

std::string AddExifOrientation(const std::string& jpeg, int orientation, bool big_endian) {
  const bool be = big_endian;
  std::string tiff = be ? "MM" : "II";
  AppendU16(&tiff, 42, be);
  AppendU32(&tiff, 8, be);  // IFD0 right after the header
  const uint16_t entries = 3;
  const uint32_t data_offset = 8 + 2 + entries * 12 + 4;
  AppendU16(&tiff, entries, be);
  // Make (ASCII, 6 bytes, stored out of line).
  AppendU16(&tiff, 0x010F, be);
  AppendU16(&tiff, 2, be);
  AppendU32(&tiff, 6, be);
  AppendU32(&tiff, data_offset, be);
  // Orientation (SHORT, 1 value, left-justified in the 4-byte value field).
  AppendU16(&tiff, 0x0112, be);
  AppendU16(&tiff, 3, be);
  AppendU32(&tiff, 1, be);
  AppendU16(&tiff, static_cast<uint16_t>(orientation), be);
  AppendU16(&tiff, 0, be);
  // XResolution (RATIONAL, stored out of line).
  AppendU16(&tiff, 0x011A, be);
  AppendU16(&tiff, 5, be);
  AppendU32(&tiff, 1, be);
  AppendU32(&tiff, data_offset + 6, be);
  AppendU32(&tiff, 0, be);  // no next IFD
  tiff.append("Leaf\0\0", 6);
  AppendU32(&tiff, 72, be);
  AppendU32(&tiff, 1, be);

  std::string payload("Exif\0\0", 6);
  payload += tiff;
  std::string segment("\xFF\xE1", 2);
  AppendU16(&segment, static_cast<uint16_t>(payload.size() + 2), true);
  segment += payload;
  if (jpeg.size() < 2) Die("AddExifOrientation: not a JPEG");
  return jpeg.substr(0, 2) + segment + jpeg.substr(2);
}

std::string PatchJpegSize(const std::string& jpeg, int width, int height) {
  std::string out = jpeg;
  size_t pos = 2;
  while (pos + 4 <= out.size()) {
    const auto marker = static_cast<uint8_t>(out[pos + 1]);
    const size_t length =
        (static_cast<uint8_t>(out[pos + 2]) << 8) | static_cast<uint8_t>(out[pos + 3]);
    if (marker >= 0xC0 && marker <= 0xC2) {
      out[pos + 5] = static_cast<char>(height >> 8);
      out[pos + 6] = static_cast<char>(height & 0xFF);
      out[pos + 7] = static_cast<char>(width >> 8);
      out[pos + 8] = static_cast<char>(width & 0xFF);
      return out;
    }
    pos += 2 + length;
  }
  Die("PatchJpegSize: no SOF marker");
}

std::string EncodePng(const PngSpec& spec) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, PngWriteError, PngWriteWarning);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) Die("png_create_write_struct");
  std::string out;
  png_set_write_fn(png, &out, PngWriteToString, PngFlush);
  png_set_IHDR(png, info, spec.width, spec.height, spec.bit_depth, spec.color_type,
               spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_color> palette;
  for (size_t i = 0; i + 2 < spec.palette.size(); i += 3) {
    palette.push_back({spec.palette[i], spec.palette[i + 1], spec.palette[i + 2]});
  }
  if (!palette.empty()) png_set_PLTE(png, info, palette.data(), static_cast<int>(palette.size()));
  if (!spec.trns.empty()) {
    if (spec.color_type == PNG_COLOR_TYPE_PALETTE) {
      png_set_tRNS(png, info, spec.trns.data(), static_cast<int>(spec.trns.size()), nullptr);
    } else {
      png_color_16 colour = {};
      auto u16 = [&](size_t i) {
        return static_cast<png_uint_16>((spec.trns[i] << 8) | spec.trns[i + 1]);
      };
      if (spec.color_type == PNG_COLOR_TYPE_GRAY) {
        colour.gray = u16(0);
      } else {
        colour.red = u16(0);
        colour.green = u16(2);
        colour.blue = u16(4);
      }
      png_set_tRNS(png, info, nullptr, 0, &colour);
    }
  }
  png_write_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  if (spec.samples.size() != row_bytes * spec.height) Die("EncodePng: sample buffer size");
  std::vector<png_bytep> rows(spec.height);
  for (int y = 0; y < spec.height; ++y) {
    rows[y] = const_cast<png_bytep>(spec.samples.data()) + y * row_bytes;
  }
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::string EncodePngRgb(const Rgb& image) {
  PngSpec spec;
  spec.width = image.width;
  spec.height = image.height;
  spec.color_type = PNG_COLOR_TYPE_RGB;
  spec.bit_depth = 8;
  spec.samples = image.pixels;
  return EncodePng(spec);
}

std::string PngHeaderOnly(uint32_t width, uint32_t height) {
  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string chunk = "IHDR";
  AppendU32(&chunk, width, true);
  AppendU32(&chunk, height, true);
  chunk.push_back(8);  // bit depth
  chunk.push_back(2);  // RGB
  chunk.append(3, '\0');
  AppendU32(&out, 13, true);
  out += chunk;
  AppendU32(&out, Crc32(chunk), true);
  return out;
}

std::string EncodeWebpLossless(const Rgb& image) {
  uint8_t* buffer = nullptr;
  const size_t size = WebPEncodeLosslessRGB(image.pixels.data(), image.width, image.height,
                                            image.width * 3, &buffer);
  if (size == 0) Die("WebPEncodeLosslessRGB");
  std::string out(reinterpret_cast<char*>(buffer), size);
  WebPFree(buffer);
  return out;
}

std::string EncodeWebpLossy(const Rgb& image, float quality) {
  uint8_t* buffer = nullptr;
  const size_t size = WebPEncodeRGB(image.pixels.data(), image.width, image.height, image.width * 3,
                                    quality, &buffer);
  if (size == 0) Die("WebPEncodeRGB");
  std::string out(reinterpret_cast<char*>(buffer), size);
  WebPFree(buffer);
  return out;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot open " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace cropshield::image::test_images
