// Downscaling of decoded photos for outputs drawn at a bounded size (Explain overlays).
//
// Thread safety: reentrant; no shared state.
#ifndef CROPSHIELD_SERVER_IMAGE_RESIZE_H_
#define CROPSHIELD_SERVER_IMAGE_RESIZE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cropshield::image {

// Resizes an RGB8 image (width*height*3 bytes, row-major) to out_width x out_height with area
// averaging (OpenCV INTER_AREA: each output pixel is the mean of the source pixels it covers, the
// usual choice for shrinking; bilinear when enlarging). Equal sizes return a copy.
// INVALID_ARGUMENT for non-positive sizes or rgb.size() != width*height*3; INTERNAL if OpenCV
// fails.
absl::StatusOr<std::vector<uint8_t>> ResizeRgb(absl::Span<const uint8_t> rgb, int width, int height,
                                               int out_width, int out_height);

}  // namespace cropshield::image

#endif  // CROPSHIELD_SERVER_IMAGE_RESIZE_H_
