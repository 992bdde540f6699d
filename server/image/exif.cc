#include "server/image/exif.h"

#include <cstddef>
#include <cstdint>
#include <opencv2/core.hpp>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cropshield::image::internal {
namespace {

constexpr uint16_t kOrientationTag = 0x0112;
constexpr uint16_t kTypeShort = 3;
constexpr uint16_t kTypeLong = 4;

// Bounds-checked reader for the TIFF structure; every read reports failure instead of trusting
// offsets that come from the file.
class TiffReader {
 public:
  explicit TiffReader(absl::string_view data) : data_(data) {}

  bool ReadByteOrder() {
    if (data_.size() < 8) return false;
    if (data_[0] == 'I' && data_[1] == 'I') {
      little_endian_ = true;
    } else if (data_[0] == 'M' && data_[1] == 'M') {
      little_endian_ = false;
    } else {
      return false;
    }
    uint16_t magic = 0;
    return U16(2, &magic) && magic == 42;
  }

  bool U16(size_t offset, uint16_t* out) const {
    if (offset > data_.size() || data_.size() - offset < 2) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_.data()) + offset;
    *out = little_endian_ ? static_cast<uint16_t>(p[0] | (p[1] << 8))
                          : static_cast<uint16_t>((p[0] << 8) | p[1]);
    return true;
  }

  bool U32(size_t offset, uint32_t* out) const {
    if (offset > data_.size() || data_.size() - offset < 4) return false;
    const auto* p = reinterpret_cast<const uint8_t*>(data_.data()) + offset;
    if (little_endian_) {
      *out =
          uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
    } else {
      *out =
          (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
    }
    return true;
  }

 private:
  absl::string_view data_;
  bool little_endian_ = false;
};

}  // namespace

int ParseExifOrientation(absl::string_view tiff) {
  TiffReader reader(tiff);
  if (!reader.ReadByteOrder()) return 1;
  uint32_t ifd_offset = 0;
  uint16_t entry_count = 0;
  if (!reader.U32(4, &ifd_offset) || !reader.U16(ifd_offset, &entry_count)) return 1;
  for (uint32_t i = 0; i < entry_count; ++i) {
    // 12-byte entries: tag, type, count, value-or-offset. size_t arithmetic cannot overflow here:
    // ifd_offset < 2^32 and i < 2^16.
    const size_t entry = size_t{ifd_offset} + 2 + size_t{i} * 12;
    uint16_t tag = 0;
    uint16_t type = 0;
    uint32_t count = 0;
    if (!reader.U16(entry, &tag) || !reader.U16(entry + 2, &type) ||
        !reader.U32(entry + 4, &count)) {
      return 1;
    }
    if (tag != kOrientationTag) continue;
    if (count < 1) return 1;
    uint32_t value = 0;
    if (type == kTypeShort) {
      uint16_t v16 = 0;
      if (!reader.U16(entry + 8, &v16)) return 1;
      value = v16;
    } else if (type == kTypeLong) {  // Non-standard, but seen in the wild.
      if (!reader.U32(entry + 8, &value)) return 1;
    } else {
      return 1;
    }
    return (value >= 1 && value <= 8) ? static_cast<int>(value) : 1;
  }
  return 1;
}

absl::Status ApplyExifOrientation(int orientation, int* width, int* height,
                                  std::vector<uint8_t>* rgb) {
  if (orientation < 2 || orientation > 8) return absl::OkStatus();
  const int w = *width;
  const int h = *height;
  if (rgb->size() != static_cast<size_t>(w) * h * 3) {
    return absl::InternalError(absl::StrCat("orientation: buffer holds ", rgb->size(),
                                            " bytes, expected ", w, "x", h, "x3"));
  }
  const bool swap = OrientationSwapsAxes(orientation);
  const int out_w = swap ? h : w;
  const int out_h = swap ? w : h;
  std::vector<uint8_t> out(rgb->size());
  try {
    const cv::Mat src(h, w, CV_8UC3, rgb->data());
    cv::Mat dst(out_h, out_w, CV_8UC3, out.data());
    // EXIF names where stored row 0 / column 0 belong on screen; each case maps that to an
    // OpenCV flip / transpose. dst wraps `out`, and OpenCV keeps a buffer whose size and type
    // already match, so results land in `out` without a copy.
    switch (orientation) {
      case 2:  // Mirrored horizontally.
        cv::flip(src, dst, 1);
        break;
      case 3:  // Rotated 180.
        cv::flip(src, dst, -1);
        break;
      case 4:  // Mirrored vertically.
        cv::flip(src, dst, 0);
        break;
      case 5:  // Transposed (row 0 is the left column).
        cv::transpose(src, dst);
        break;
      case 6:  // Needs 90 degrees clockwise.
        cv::transpose(src, dst);
        cv::flip(dst, dst, 1);
        break;
      case 7: {  // Transversed: transpose, then rotate 180.
        cv::Mat transposed;
        cv::transpose(src, transposed);
        cv::flip(transposed, dst, -1);
        break;
      }
      case 8:  // Needs 90 degrees counter-clockwise.
        cv::transpose(src, dst);
        cv::flip(dst, dst, 0);
        break;
    }
    if (dst.data != out.data()) {
      return absl::InternalError("orientation: OpenCV reallocated the output buffer");
    }
  } catch (const cv::Exception& e) {
    return absl::InternalError(absl::StrCat("orientation: OpenCV error: ", e.what()));
  }
  *rgb = std::move(out);
  *width = out_w;
  *height = out_h;
  return absl::OkStatus();
}

}  // namespace cropshield::image::internal
