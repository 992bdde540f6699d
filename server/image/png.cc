// PNG through libpng's low-level read API rather than the simplified png_image API, because the
// latter composites alpha onto a background instead of dropping it.
//
// The two functions that call setjmp (ReadHeader, ReadPixels) hold only trivially destructible
// locals (see png_handle.h); the libpng structs and the buffers are owned by DecodePng.
#include <png.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/image/codecs.h"
#include "server/image/decode.h"
#include "server/image/png_handle.h"

namespace cropshield::image::internal {
namespace {

constexpr size_t kSignatureSize = 8;
// Signature + IHDR chunk (length, type, 13 data bytes, CRC).
constexpr size_t kHeaderSize = kSignatureSize + 4 + 4 + 13 + 4;

uint32_t ReadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// CRC-32 as PNG chunks use it (zlib's polynomial); bitwise, since only the 17-byte IHDR is checked
// here and libpng verifies every other chunk.
uint32_t Crc32(const uint8_t* data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

bool ValidDepthForColorType(int color_type, int depth) {
  switch (color_type) {
    case 0:  // Gray.
      return depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
    case 3:  // Palette.
      return depth == 1 || depth == 2 || depth == 4 || depth == 8;
    case 2:  // RGB.
    case 4:  // Gray + alpha.
    case 6:  // RGBA.
      return depth == 8 || depth == 16;
    default:
      return false;
  }
}

// Must stay trivially destructible: it is live across setjmp/longjmp.
struct PngReadState {
  const uint8_t* data;
  size_t size;
  size_t pos;
  bool truncated;
  PngError error;
};

void ReadFromMemory(png_structp png, png_bytep out, size_t length) {
  auto* state = static_cast<PngReadState*>(png_get_io_ptr(png));
  if (state->size - state->pos < length) {
    state->truncated = true;
    png_error(png, "truncated PNG data");  // Does not return.
  }
  std::memcpy(out, state->data + state->pos, length);
  state->pos += length;
}

// Reads the header chunks and sets up transformations to 8-bit RGB. Returns false after a libpng
// error (its message is in the state's PngError).
bool ReadHeader(png_structp png, png_infop info, size_t* row_bytes, int* channels, int* depth) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  // Keep the high byte like PIL does for 16-bit RGB, so tensors agree with the Python pipeline.
  if (bit_depth == 16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if ((color_type & PNG_COLOR_MASK_COLOR) == 0) png_set_gray_to_rgb(png);
  // Unconditional: palette expansion turns tRNS into an alpha channel that must go as well. tRNS on
  // gray/RGB images is never expanded (no png_set_tRNS_to_alpha), i.e. ignored.
  png_set_strip_alpha(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *row_bytes = png_get_rowbytes(png, info);
  *channels = png_get_channels(png, info);
  *depth = png_get_bit_depth(png, info);
  return true;
}

bool ReadPixels(png_structp png, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  // Also verifies the chunks after the image data and their CRCs, so a file cut off after its last
  // IDAT is still reported as truncated.
  png_read_end(png, nullptr);
  return true;
}

absl::Status PngFailure(const PngReadState& state) {
  if (state.truncated) return absl::InvalidArgumentError("truncated PNG data");
  return absl::InvalidArgumentError(absl::StrCat("corrupt PNG data: ", state.error.message));
}

}  // namespace

absl::StatusOr<ImageInfo> ProbePng(absl::string_view bytes) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  if (bytes.size() < kHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("truncated PNG data: ", bytes.size(),
                                                   " bytes, the header alone needs ", kHeaderSize));
  }
  const uint8_t* ihdr = d + kSignatureSize;
  if (ReadBe32(ihdr) != 13 || std::memcmp(ihdr + 4, "IHDR", 4) != 0) {
    return absl::InvalidArgumentError("corrupt PNG header: first chunk is not a 13-byte IHDR");
  }
  if (Crc32(ihdr + 4, 4 + 13) != ReadBe32(ihdr + 8 + 13)) {
    return absl::InvalidArgumentError("corrupt PNG header: IHDR checksum mismatch");
  }
  const uint8_t* f = ihdr + 8;
  const uint32_t width = ReadBe32(f);
  const uint32_t height = ReadBe32(f + 4);
  const int depth = f[8];
  const int color_type = f[9];
  if (width == 0 || height == 0 || width > kPngMaxDimension || height > kPngMaxDimension) {
    return absl::InvalidArgumentError(
        absl::StrCat("corrupt PNG header: invalid dimensions ", width, "x", height));
  }
  if (!ValidDepthForColorType(color_type, depth)) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt PNG header: bit depth ", depth,
                                                   " is invalid for colour type ", color_type));
  }
  if (f[10] != 0 || f[11] != 0 || f[12] > 1) {
    return absl::InvalidArgumentError(
        "corrupt PNG header: unknown compression, filter or interlace method");
  }
  ImageInfo info;
  info.format = ImageFormat::kPng;
  info.width = static_cast<int>(width);
  info.height = static_cast<int>(height);
  return info;
}

absl::StatusOr<DecodedImage> DecodePng(absl::string_view bytes, const DecodeOptions& options) {
  CS_ASSIGN_OR_RETURN(const ImageInfo header, ProbePng(bytes));
  CS_RETURN_IF_ERROR(CheckPixelBudget(header.width, header.height, options.max_pixels));

  PngReadState state = {};
  state.data = reinterpret_cast<const uint8_t*>(bytes.data());
  state.size = bytes.size();
  PngHandle reader(PngHandle::Mode::kRead, &state.error);
  if (!reader.ok()) return absl::ResourceExhaustedError("cannot create a libpng reader");
  png_set_read_fn(reader.png(), &state, ReadFromMemory);

  size_t row_bytes = 0;
  int channels = 0;
  int depth = 0;
  if (!ReadHeader(reader.png(), reader.info(), &row_bytes, &channels, &depth)) {
    return PngFailure(state);
  }
  const size_t width = static_cast<size_t>(header.width);
  const size_t height = static_cast<size_t>(header.height);
  if (channels != 3 || depth != 8 || row_bytes != width * 3) {
    return absl::InternalError(absl::StrCat("libpng produced ", channels, " channels of ", depth,
                                            " bits, ", row_bytes, " bytes per row; expected RGB8"));
  }

  DecodedImage image;
  image.format = ImageFormat::kPng;
  image.width = image.full_width = header.width;
  image.height = image.full_height = header.height;
  image.rgb.resize(width * height * 3);
  std::vector<png_bytep> rows(height);
  for (size_t y = 0; y < height; ++y) rows[y] = image.rgb.data() + y * row_bytes;
  if (!ReadPixels(reader.png(), rows.data())) return PngFailure(state);
  return image;
}

}  // namespace cropshield::image::internal
