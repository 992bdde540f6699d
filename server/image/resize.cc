#include "server/image/resize.h"

#include <exception>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "absl/strings/str_cat.h"

namespace cropshield::image {

absl::StatusOr<std::vector<uint8_t>> ResizeRgb(absl::Span<const uint8_t> rgb, int width, int height,
                                               int out_width, int out_height) {
  if (width <= 0 || height <= 0 || out_width <= 0 || out_height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("resize: sizes must be positive, got ", width,
                                                   "x", height, " -> ", out_width, "x",
                                                   out_height));
  }
  if (rgb.size() != static_cast<size_t>(width) * height * 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("resize: ", rgb.size(), " bytes for a ", width, "x", height, " RGB image"));
  }
  std::vector<uint8_t> out(static_cast<size_t>(out_width) * out_height * 3);
  if (out_width == width && out_height == height) {
    std::copy(rgb.begin(), rgb.end(), out.begin());
    return out;
  }
  try {
    // Both Mats wrap caller memory; OpenCV writes into `out` because its size and type match.
    const cv::Mat src(height, width, CV_8UC3, const_cast<uint8_t*>(rgb.data()));
    cv::Mat dst(out_height, out_width, CV_8UC3, out.data());
    cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_AREA);
    if (dst.data != out.data()) return absl::InternalError("resize: OpenCV reallocated the output");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("resize: OpenCV error: ", e.what()));
  }
  return out;
}

}  // namespace cropshield::image
