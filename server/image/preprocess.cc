#include "server/image/preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "server/image/decode.h"

namespace cropshield::image {
namespace {

// Where the crop window lies along one axis, in pixels of the resized photo.
struct AxisGeometry {
  int64_t resized = 0;  // torchvision's Resize output length
  int64_t offset = 0;   // first resized pixel in the crop; negative when zero-padded
};

// Python's round() on the half-integer d / 2 (d >= 0): halves go to the even neighbour.
int64_t HalfRoundedToEven(int64_t d) {
  const int64_t q = d / 2;
  if (d % 2 == 0) return q;
  return q % 2 == 0 ? q : q + 1;
}

AxisGeometry CropAxis(int64_t resized, int64_t crop) {
  AxisGeometry g;
  g.resized = resized;
  if (crop > resized) {
    // torchvision pads (crop - resized) // 2 zeros before, the rest after, then crops at 0.
    g.offset = -((crop - resized) / 2);
  } else {
    g.offset = HalfRoundedToEven(resized - crop);
  }
  return g;
}

absl::Status ValidateOptions(const PreprocessOptions& options) {
  if (options.resize_shorter_side <= 0 || options.input_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("PreprocessOptions: resize_shorter_side (", options.resize_shorter_side,
                     ") and input_size (", options.input_size, ") must be positive"));
  }
  for (int c = 0; c < 3; ++c) {
    if (!std::isfinite(options.mean[c]) || !std::isfinite(options.std[c]) ||
        options.std[c] == 0.0f) {
      return absl::InvalidArgumentError(
          "PreprocessOptions: mean must be finite and std finite and non-zero");
    }
  }
  return absl::OkStatus();
}

// torchvision Resize(int) followed by CenterCrop, per axis.
void ComputeGeometry(int64_t full_w, int64_t full_h, const PreprocessOptions& options,
                     AxisGeometry* x, AxisGeometry* y) {
  const int64_t size = options.resize_shorter_side;
  const int64_t shorter = std::min(full_w, full_h);
  const int64_t longer = std::max(full_w, full_h);
  // int(size * long / short) in Python; integer division gives the same result because a true
  // quotient that is not an integer is never within a float rounding of one at these magnitudes.
  const int64_t new_long = size * longer / shorter;
  const int64_t new_w = full_w <= full_h ? size : new_long;
  const int64_t new_h = full_w <= full_h ? new_long : size;
  *x = CropAxis(new_w, options.input_size);
  *y = CropAxis(new_h, options.input_size);
}

CropBox BoxFromGeometry(int64_t full_w, int64_t full_h, const AxisGeometry& x,
                        const AxisGeometry& y, int crop) {
  const double sx = static_cast<double>(full_w) / static_cast<double>(x.resized);
  const double sy = static_cast<double>(full_h) / static_cast<double>(y.resized);
  CropBox box;
  box.x = static_cast<double>(x.offset) * sx;
  box.y = static_cast<double>(y.offset) * sy;
  box.width = crop * sx;
  box.height = crop * sy;
  return box;
}

// PIL's 8-bit resampling arithmetic: weights in fixed point with 22 fractional bits, sums rounded
// and clamped to 0..255 after each pass (Resample.c, PRECISION_BITS = 32 - 8 - 2).
constexpr int kPrecisionBits = 22;

uint8_t Clip8(int32_t sum) {
  if (sum >= (int32_t{255} << kPrecisionBits)) return 255;  // PIL: (1 << bits) << 8, same bytes
  if (sum <= 0) return 0;
  return static_cast<uint8_t>(sum >> kPrecisionBits);
}

// Resampling taps of one output pixel along one axis: weights for source pixels
// [first, first + count). count == 0 marks a zero-padded output pixel.
struct Taps {
  int64_t first = 0;
  int count = 0;
  size_t weight_index = 0;
};

struct AxisFilter {
  std::vector<Taps> taps;  // one per output pixel
  std::vector<int32_t> weights;
  int64_t min_source = 0;  // source range any output reads: [min_source, end_source)
  int64_t end_source = 0;
};

// PIL's antialiased bilinear filter (Resample.c, precompute_coeffs + normalize_coeffs_8bpc),
// evaluated only for the output pixels inside the crop window, with PIL's exact floating-point
// expressions so that a full-size image gives PIL's weights bit for bit. `source_extent` is the
// photo's length in source pixels; it can be a little shorter than `source_size` when a JPEG was
// DCT-scaled and rounded up.
AxisFilter BuildAxisFilter(int64_t source_size, double source_extent, const AxisGeometry& g,
                           int crop) {
  AxisFilter filter;
  filter.taps.resize(crop);
  filter.min_source = source_size;
  filter.end_source = 0;
  const double scale = source_extent / static_cast<double>(g.resized);  // source px per output px
  const double filter_scale = std::max(scale, 1.0);  // widen the kernel only when shrinking
  const double support = 1.0 * filter_scale;         // bilinear kernel: support 1
  const double inverse_scale = 1.0 / filter_scale;
  std::vector<double> w;
  for (int j = 0; j < crop; ++j) {
    const int64_t c = g.offset + j;         // pixel of the resized photo
    if (c < 0 || c >= g.resized) continue;  // zero padding
    const double center = (static_cast<double>(c) + 0.5) * scale;
    int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    int64_t hi = std::min<int64_t>(source_size, static_cast<int64_t>(center + support + 0.5));
    if (hi <= lo) {  // Cannot happen for a sane geometry; fall back to the nearest pixel.
      lo = std::clamp<int64_t>(static_cast<int64_t>(center), 0, source_size - 1);
      hi = lo + 1;
    }
    w.assign(static_cast<size_t>(hi - lo), 0.0);
    double total = 0;
    for (int64_t s = lo; s < hi; ++s) {
      double t = (static_cast<double>(s) - center + 0.5) * inverse_scale;
      if (t < 0) t = -t;
      const double v = t < 1.0 ? 1.0 - t : 0.0;
      w[s - lo] = v;
      total += v;
    }
    if (total == 0.0) w[0] = total = 1.0;
    std::vector<int32_t> fixed(w.size());
    for (size_t k = 0; k < w.size(); ++k) {
      const double normalised = w[k] / total;  // never negative for the bilinear kernel
      fixed[k] = static_cast<int32_t>(0.5 + normalised * (1 << kPrecisionBits));
    }
    // Zero weights at either end cost work and nothing else; an unscaled axis is left with the
    // single weight 1.0, i.e. an exact copy.
    size_t begin = 0;
    size_t end = fixed.size();
    while (begin < end && fixed[begin] == 0) ++begin;
    while (end > begin && fixed[end - 1] == 0) --end;
    Taps& t = filter.taps[j];
    t.first = lo + static_cast<int64_t>(begin);
    t.count = static_cast<int>(end - begin);
    t.weight_index = filter.weights.size();
    filter.weights.insert(filter.weights.end(), fixed.begin() + begin, fixed.begin() + end);
    filter.min_source = std::min(filter.min_source, t.first);
    filter.end_source = std::max(filter.end_source, t.first + t.count);
  }
  if (filter.end_source <= filter.min_source) filter.min_source = filter.end_source = 0;
  return filter;
}

// True when the filter copies `crop` consecutive source pixels unchanged (an axis that is neither
// scaled nor padded): single taps of weight 1.0 on first, first + 1, ...
bool IsPlainCopy(const AxisFilter& filter) {
  for (size_t j = 0; j < filter.taps.size(); ++j) {
    const Taps& t = filter.taps[j];
    if (t.count != 1 || filter.weights[t.weight_index] != (int32_t{1} << kPrecisionBits) ||
        t.first != filter.taps[0].first + static_cast<int64_t>(j)) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<CropBox> ComputeCropBox(int full_width, int full_height,
                                       const PreprocessOptions& options) {
  CS_RETURN_IF_ERROR(ValidateOptions(options));
  if (full_width <= 0 || full_height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("photo size ", full_width, "x", full_height, " is not positive"));
  }
  AxisGeometry x, y;
  ComputeGeometry(full_width, full_height, options, &x, &y);
  return BoxFromGeometry(full_width, full_height, x, y, options.input_size);
}

namespace {

// The checks of Preprocess's arguments; the full photo size (the image's own when unset).
absl::Status CheckPreprocessInputs(const DecodedImage& image, const PreprocessOptions& options,
                                   size_t out_floats, int64_t* full_w, int64_t* full_h) {
  CS_RETURN_IF_ERROR(ValidateOptions(options));
  const int64_t w = image.width;
  const int64_t h = image.height;
  if (w <= 0 || h <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("image size ", w, "x", h, " is not positive"));
  }
  if (image.rgb.size() != static_cast<size_t>(w) * static_cast<size_t>(h) * 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("image holds ", image.rgb.size(), " bytes, expected ", w, "x", h, "x3"));
  }
  const bool unset = image.full_width == 0 && image.full_height == 0;
  *full_w = unset ? w : image.full_width;
  *full_h = unset ? h : image.full_height;
  if (*full_w <= 0 || *full_h <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("full photo size ", *full_w, "x", *full_h, " is not positive"));
  }
  const int crop = options.input_size;
  const size_t plane = static_cast<size_t>(crop) * static_cast<size_t>(crop);
  if (out_floats != 3 * plane) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output holds ", out_floats, " floats, expected 3x", crop, "x", crop, " = ", 3 * plane));
  }
  return absl::OkStatus();
}

// The photo's extent in `image` pixels. A DCT-scaled JPEG covers exactly full * num / denom
// pixels (its last pixel only partly); width / full_width would be off by that rounding.
std::pair<double, double> SourceExtent(const DecodedImage& image, int64_t full_w, int64_t full_h) {
  const int64_t w = image.width;
  const int64_t h = image.height;
  const int64_t num = image.scale_num;
  const int64_t denom = image.scale_denom;
  if (num > 0 && denom > 0 && (full_w * num + denom - 1) / denom == w &&
      (full_h * num + denom - 1) / denom == h) {
    return {static_cast<double>(full_w * num) / static_cast<double>(denom),
            static_cast<double>(full_h * num) / static_cast<double>(denom)};
  }
  return {static_cast<double>(w), static_cast<double>(h)};
}

// Horizontal pass over just the source rows [fy.min_source, fy.end_source) that the vertical pass
// reads: `crop` interleaved RGB8 columns per row, rounded to 8 bits as PIL does.
std::vector<uint8_t> HorizontalPass(const DecodedImage& image, const AxisFilter& fx,
                                    const AxisFilter& fy, int crop) {
  const int64_t row0 = fy.min_source;
  const int64_t rows = fy.end_source - fy.min_source;
  const size_t tmp_stride = static_cast<size_t>(crop) * 3;
  std::vector<uint8_t> tmp(static_cast<size_t>(rows) * tmp_stride, 0);
  constexpr int32_t kHalf = int32_t{1} << (kPrecisionBits - 1);
  const bool copy_x = IsPlainCopy(fx);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* src_row =
        image.rgb.data() + static_cast<size_t>(row0 + r) * static_cast<size_t>(image.width) * 3;
    uint8_t* tmp_row = tmp.data() + static_cast<size_t>(r) * tmp_stride;
    if (copy_x) {  // same bytes as the arithmetic below gives for a single weight of 1.0
      std::memcpy(tmp_row, src_row + static_cast<size_t>(fx.taps[0].first) * 3, tmp_stride);
      continue;
    }
    for (int j = 0; j < crop; ++j) {
      const Taps& t = fx.taps[j];
      const int32_t* wt = fx.weights.data() + t.weight_index;
      const uint8_t* p = src_row + static_cast<size_t>(t.first) * 3;
      int32_t s0 = kHalf, s1 = kHalf, s2 = kHalf;
      for (int k = 0; k < t.count; ++k, p += 3) {
        s0 += p[0] * wt[k];
        s1 += p[1] * wt[k];
        s2 += p[2] * wt[k];
      }
      // A padded column stays 0, like torchvision's pad(fill=0).
      if (t.count > 0) {
        tmp_row[j * 3 + 0] = Clip8(s0);
        tmp_row[j * 3 + 1] = Clip8(s1);
        tmp_row[j * 3 + 2] = Clip8(s2);
      }
    }
  }
  return tmp;
}

// Vertical pass over HorizontalPass's rows, fused with ToTensor (v / 255) + Normalize
// ((v - mean) / std, float32 like torch) and the output channel order.
void VerticalPass(const std::vector<uint8_t>& tmp, const AxisFilter& fy, int crop,
                  const PreprocessOptions& options, absl::Span<float> out) {
  const int64_t row0 = fy.min_source;
  const size_t tmp_stride = static_cast<size_t>(crop) * 3;
  const size_t plane = static_cast<size_t>(crop) * static_cast<size_t>(crop);
  constexpr int32_t kHalf = int32_t{1} << (kPrecisionBits - 1);
  // The normalised value of each 8-bit level, computed with torch's float32 expression (so the
  // table is bit-identical to it) once per channel instead of a division per pixel.
  float* planes[3];
  std::array<std::array<float, 256>, 3> normalised;
  for (int oc = 0; oc < 3; ++oc) {
    const int sc = options.bgr ? 2 - oc : oc;  // source (RGB) channel of output channel oc
    planes[sc] = out.data() + static_cast<size_t>(oc) * plane;
    for (int level = 0; level < 256; ++level) {
      normalised[sc][level] =
          (static_cast<float>(level) / 255.0f - options.mean[sc]) / options.std[sc];
    }
  }
  std::vector<uint8_t> row_buffer(tmp_stride);
  for (int i = 0; i < crop; ++i) {
    const Taps& t = fy.taps[i];
    const int32_t* wt = fy.weights.data() + t.weight_index;
    const uint8_t* row = row_buffer.data();  // the output row, interleaved RGB8
    if (t.count == 0) {                      // padded rows stay 0
      std::fill(row_buffer.begin(), row_buffer.end(), 0);
    } else if (t.count == 1 && wt[0] == (int32_t{1} << kPrecisionBits)) {
      row = tmp.data() + static_cast<size_t>(t.first - row0) * tmp_stride;  // an unscaled row
    } else {
      const uint8_t* col0 = tmp.data() + static_cast<size_t>(t.first - row0) * tmp_stride;
      for (size_t b = 0; b < tmp_stride; ++b) {
        const uint8_t* p = col0 + b;
        int32_t sum = kHalf;
        for (int k = 0; k < t.count; ++k, p += tmp_stride) sum += *p * wt[k];
        row_buffer[b] = Clip8(sum);
      }
    }
    const size_t o = static_cast<size_t>(i) * crop;
    float* out0 = planes[0] + o;
    float* out1 = planes[1] + o;
    float* out2 = planes[2] + o;
    for (int j = 0; j < crop; ++j, row += 3) {
      out0[j] = normalised[0][row[0]];
      out1[j] = normalised[1][row[1]];
      out2[j] = normalised[2][row[2]];
    }
  }
}

}  // namespace

absl::Status Preprocess(const DecodedImage& image, const PreprocessOptions& options,
                        absl::Span<float> out, CropBox* crop_box) {
  int64_t full_w = 0;
  int64_t full_h = 0;
  CS_RETURN_IF_ERROR(CheckPreprocessInputs(image, options, out.size(), &full_w, &full_h));
  const int crop = options.input_size;
  AxisGeometry gx, gy;
  ComputeGeometry(full_w, full_h, options, &gx, &gy);
  if (crop_box != nullptr) *crop_box = BoxFromGeometry(full_w, full_h, gx, gy, crop);
  const auto [extent_x, extent_y] = SourceExtent(image, full_w, full_h);
  const AxisFilter fx = BuildAxisFilter(image.width, extent_x, gx, crop);
  const AxisFilter fy = BuildAxisFilter(image.height, extent_y, gy, crop);
  // PIL's order: horizontal, rounded to 8 bits, then vertical.
  VerticalPass(HorizontalPass(image, fx, fy, crop), fy, crop, options, out);
  return absl::OkStatus();
}

}  // namespace cropshield::image
