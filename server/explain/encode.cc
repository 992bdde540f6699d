// In-memory PNG (libpng) and JPEG (TurboJPEG) encoders.
//
// The one function that calls setjmp (WritePngImage) holds only trivially destructible locals (see
// server/image/png_handle.h); the output string and the libpng structs are owned by EncodePng.
#include <png.h>
#include <turbojpeg.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/explain/pixel_count.h"
#include "server/explain/render.h"
#include "server/image/png_handle.h"

namespace cropshield::explain {
namespace {

// Fast settings, measured on 1600x1200 RGBA heatmaps: zlib level 2 (deflate_fast) with the UP
// filter alone. Heatmap rows change slowly from one to the next, so UP leaves long runs of zeros;
// it compresses them to ~4% of raw, about 2x the size of libpng's defaults (adaptive filtering,
// level 6), in a quarter of the time. Adaptive filtering alone would cost more than the deflate.
constexpr int kPngCompressionLevel = 2;
constexpr int kPngFilters = PNG_FILTER_UP;
constexpr size_t kPngCompressionBuffer = size_t{1} << 17;  // bytes per IDAT chunk

// Must stay trivially destructible: it is live across setjmp/longjmp.
struct PngWriteState {
  std::string* out;
  bool out_of_memory;
  image::PngError error;
};

void WriteToMemory(png_structp png, png_bytep data, size_t length) {
  auto* state = static_cast<PngWriteState*>(png_get_io_ptr(png));
  bool appended = true;
  try {
    state->out->append(reinterpret_cast<const char*>(data), length);
  } catch (const std::bad_alloc&) {
    appended = false;
  }
  // Outside the handler: longjmp out of a catch block would leak the exception.
  if (!appended) {
    state->out_of_memory = true;
    png_error(png, "out of memory");  // Does not return.
  }
}

void FlushNothing(png_structp) {}

// Returns false after a libpng error (its message is in the state's PngError).
bool WritePngImage(png_structp png, png_infop info, const uint8_t* pixels, int width, int height,
                   int channels) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               channels == 4 ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, kPngCompressionLevel);
  png_set_compression_buffer_size(png, kPngCompressionBuffer);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, kPngFilters);
  png_write_info(png, info);
  const size_t stride = static_cast<size_t>(width) * static_cast<size_t>(channels);
  for (int y = 0; y < height; ++y) png_write_row(png, pixels + static_cast<size_t>(y) * stride);
  png_write_end(png, nullptr);
  return true;
}

absl::Status CheckImage(size_t size, int width, int height, int channels, absl::string_view what) {
  if (absl::Status s = internal::CheckPixelCount(width, height, what); !s.ok()) return s;
  const size_t expected =
      static_cast<size_t>(width) * static_cast<size_t>(height) * static_cast<size_t>(channels);
  if (size != expected) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has ", size, " bytes, ", width, "x",
                                                   height, "x", channels, " needs ", expected));
  }
  return absl::OkStatus();
}

struct TjDestroy {
  void operator()(void* handle) const { tjDestroy(handle); }
};
struct TjFree {
  void operator()(unsigned char* buffer) const { tjFree(buffer); }
};

}  // namespace

absl::StatusOr<std::string> EncodePng(absl::Span<const uint8_t> pixels, int width, int height,
                                      int channels) {
  if (channels != 3 && channels != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("PNG channels must be 3 (RGB) or 4 (RGBA), not ", channels));
  }
  if (absl::Status s = CheckImage(pixels.size(), width, height, channels, "PNG image"); !s.ok()) {
    return s;
  }
  std::string out;
  PngWriteState state = {};
  state.out = &out;
  image::PngHandle writer(image::PngHandle::Mode::kWrite, &state.error);
  if (!writer.ok()) return absl::ResourceExhaustedError("cannot create a libpng writer");
  png_set_write_fn(writer.png(), &state, WriteToMemory, FlushNothing);
  // Compressed heatmaps are mostly well under a tenth of the raw size.
  out.reserve(pixels.size() / 8 + 1024);
  if (!WritePngImage(writer.png(), writer.info(), pixels.data(), width, height, channels)) {
    if (state.out_of_memory) return absl::ResourceExhaustedError("out of memory encoding PNG");
    return absl::InternalError(absl::StrCat("libpng failed: ", state.error.message));
  }
  return out;
}

absl::StatusOr<std::string> EncodeJpeg(absl::Span<const uint8_t> rgb, int width, int height,
                                       int quality) {
  if (quality < 1 || quality > 100) {
    return absl::InvalidArgumentError(absl::StrCat("JPEG quality ", quality, " is not in 1..100"));
  }
  if (absl::Status s = CheckImage(rgb.size(), width, height, 3, "JPEG image"); !s.ok()) return s;
  if (width > 65535 || height > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("JPEG size ", width, "x", height, " is over the format's 65535 limit"));
  }
  std::unique_ptr<void, TjDestroy> handle(tjInitCompress());
  if (handle == nullptr) return absl::ResourceExhaustedError("cannot create a TurboJPEG encoder");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;  // NOLINT(runtime/int): TurboJPEG's type.
  const int rc = tjCompress2(handle.get(), rgb.data(), width, /*pitch=*/0, height, TJPF_RGB,
                             &buffer, &size, TJSAMP_420, quality, /*flags=*/0);
  std::unique_ptr<unsigned char, TjFree> owned(buffer);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("TurboJPEG failed: ", tjGetErrorStr2(handle.get())));
  }
  return std::string(reinterpret_cast<const char*>(buffer), size);
}

}  // namespace cropshield::explain
