// Image decoding for CropShield Serve: JPEG (TurboJPEG), PNG (libpng) and WebP (libwebp) to
// interleaved RGB8, with EXIF orientation applied and optional JPEG DCT-domain downscaling.
//
// Thread safety: every function here is reentrant and keeps no shared state; any number of threads
// may call them concurrently on distinct or shared (read-only) inputs.
//
// Input is treated as hostile: no function crashes, aborts, throws or longjmps out on malformed
// data. Problems with the input are reported as INVALID_ARGUMENT with a message naming the problem.
#ifndef CROPSHIELD_SERVER_IMAGE_DECODE_H_
#define CROPSHIELD_SERVER_IMAGE_DECODE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cropshield::image {

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp };

// "jpeg", "png", "webp" or "unknown".
absl::string_view ImageFormatName(ImageFormat f);

// Identifies the container from its magic bytes; file names and MIME types are never trusted.
ImageFormat DetectFormat(absl::string_view bytes);

struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;  // as stored in the file (before EXIF orientation)
  int height = 0;
  int orientation = 1;  // EXIF orientation 1..8 (JPEG only; 1 otherwise)
};

// Reads only the header: format, dimensions, EXIF orientation. INVALID_ARGUMENT for empty,
// unrecognised or corrupt headers, with a message saying what is wrong. A malformed or
// out-of-range EXIF orientation is not an error: it reads as 1, as photo viewers do.
absl::StatusOr<ImageInfo> ProbeImage(absl::string_view bytes);

struct DecodeOptions {
  // width*height from the header; larger -> INVALID_ARGUMENT before any pixel memory is allocated
  // (decompression bombs). Must be > 0.
  int64_t max_pixels = 40'000'000;
  // JPEG: decode at the smallest TurboJPEG DCT scaling factor (<= 1) whose scaled shorter side is
  // still >= this (0 = full size). Other formats ignore it. Must be >= 0.
  int min_shorter_side = 0;
};

struct DecodedImage {
  ImageFormat format = ImageFormat::kUnknown;
  int width = 0;  // of `rgb`, after EXIF orientation and DCT scaling
  int height = 0;
  // The photo after EXIF orientation, before any DCT scaling (what a viewer shows).
  int full_width = 0;
  int full_height = 0;
  std::vector<uint8_t> rgb;  // width*height*3, row-major, interleaved RGB8

  // The DCT scaling factor that was applied (1/1 unless a JPEG was decoded downscaled):
  // width == ceil(full_width * scale_num / scale_denom), likewise height. It lets Preprocess map
  // photo coordinates to `rgb` exactly; width / full_width is only an approximation of it because
  // of the rounding up. Images built elsewhere may leave it at 1/1.
  int scale_num = 1;
  int scale_denom = 1;
};

// Decodes JPEG (DCT-domain scaling per `options`, EXIF orientation applied: all 8 orientations),
// PNG (8/16-bit, gray, gray+alpha, RGB, RGBA, palette, tRNS; interlaced or not) and WebP (lossy,
// lossless, with or without alpha) to RGB8. Alpha is dropped, not composited, as PIL's
// convert("RGB") does; 16-bit samples keep their high byte, as PIL does for 16-bit RGB.
//
// Corrupt, truncated, unsupported, empty or oversized input -> INVALID_ARGUMENT naming the problem
// (e.g. "truncated JPEG data", "image is 20000x20000 = 400000000 pixels, over the limit of
// 40000000"). JPEG streams on which libjpeg emits any warning (truncation, corrupt entropy data,
// stray bytes) are rejected rather than returned partially grey.
absl::StatusOr<DecodedImage> DecodeImage(absl::string_view bytes, const DecodeOptions& options);

}  // namespace cropshield::image

#endif  // CROPSHIELD_SERVER_IMAGE_DECODE_H_
