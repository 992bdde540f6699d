// Placement of activation maps on the photo, heatmaps and overlays.
#include "server/explain/render.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/explain/pixel_count.h"
#include "server/image/preprocess.h"

namespace cropshield::explain {
namespace {

// Half-open range of pixel indices.
struct PixelRange {
  int begin = 0;
  int end = 0;
};

// The pixels p in [0, size) whose centre p + 0.5 lies in [origin, origin + extent).
PixelRange SeenRange(double origin, double extent, int size) {
  const double first = std::ceil(origin - 0.5);
  const double past_last = std::ceil((origin + extent) - 0.5);
  const double limit = static_cast<double>(size);
  PixelRange range;
  range.begin = static_cast<int>(std::clamp(first, 0.0, limit));
  range.end = std::max(range.begin, static_cast<int>(std::clamp(past_last, 0.0, limit)));
  return range;
}

// Linear interpolation taps along one axis: value = m[i0] + w * (m[i1] - m[i0]).
struct Tap {
  int i0 = 0;
  int i1 = 0;
  float w = 0.0f;
};

// One tap per pixel of `range`: the pixel centre mapped into map coordinates with half-pixel
// centres (align_corners=False), clamped to the map's edges as torch does.
std::vector<Tap> AxisTaps(PixelRange range, double origin, double extent, int map_size) {
  std::vector<Tap> taps(static_cast<size_t>(range.end - range.begin));
  for (int p = range.begin; p < range.end; ++p) {
    double u = (p + 0.5 - origin) / extent * map_size - 0.5;
    if (u < 0.0) u = 0.0;
    Tap& tap = taps[static_cast<size_t>(p - range.begin)];
    tap.i0 = std::min(static_cast<int>(u), map_size - 1);
    tap.i1 = std::min(tap.i0 + 1, map_size - 1);
    tap.w = tap.i1 == tap.i0 ? 0.0f : static_cast<float>(u - tap.i0);
  }
  return taps;
}

// Colour table index of a map value: round(clamp(v, 0, 1) * 255); NaN reads as 0.
inline int ColorIndex(float v) {
  v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;
  return static_cast<int>(v * 255.0f + 0.5f);
}

}  // namespace

namespace internal {

absl::Status CheckPixelCount(int width, int height, absl::string_view what) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " size ", width, "x", height, " is not positive"));
  }
  if (int64_t{width} * height > kMaxRenderPixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " size ", width, "x", height, " is over the limit of ", kMaxRenderPixels, " pixels"));
  }
  return absl::OkStatus();
}

}  // namespace internal

bool IsWellFormed(const PhotoMap& map) {
  if (!internal::CheckPixelCount(map.width, map.height, "photo").ok()) return false;
  const size_t n = static_cast<size_t>(map.width) * static_cast<size_t>(map.height);
  return map.values.size() == n && map.seen.size() == n;
}

absl::StatusOr<PhotoMap> PlaceOnPhoto(absl::Span<const float> map, int map_width, int map_height,
                                      const image::CropBox& box, int photo_width,
                                      int photo_height) {
  if (map_width <= 0 || map_height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("map size ", map_width, "x", map_height, " is not positive"));
  }
  const size_t map_size = static_cast<size_t>(map_width) * static_cast<size_t>(map_height);
  if (map.size() != map_size) {
    return absl::InvalidArgumentError(absl::StrCat("map has ", map.size(), " values, ", map_width,
                                                   "x", map_height, " needs ", map_size));
  }
  if (absl::Status s = internal::CheckPixelCount(photo_width, photo_height, "photo"); !s.ok()) {
    return s;
  }
  if (!std::isfinite(box.x) || !std::isfinite(box.y) || !std::isfinite(box.x + box.width) ||
      !std::isfinite(box.y + box.height) || !(box.width > 0.0) || !(box.height > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("crop box (x=", box.x, ", y=", box.y,
                                                   ", width=", box.width, ", height=", box.height,
                                                   ") is empty or not finite"));
  }
  std::vector<float> clamped(map_size);
  for (size_t i = 0; i < map_size; ++i) {
    const float v = map[i];
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("map value at (", i % map_width, ", ", i / map_width, ") is not finite"));
    }
    clamped[i] = std::clamp(v, 0.0f, 1.0f);
  }

  PhotoMap out;
  out.width = photo_width;
  out.height = photo_height;
  const size_t photo_size = static_cast<size_t>(photo_width) * static_cast<size_t>(photo_height);
  out.values.assign(photo_size, 0.0f);
  out.seen.assign(photo_size, 0);

  const PixelRange xs = SeenRange(box.x, box.width, photo_width);
  const PixelRange ys = SeenRange(box.y, box.height, photo_height);
  if (xs.begin == xs.end || ys.begin == ys.end) return out;  // The box misses the photo.
  const std::vector<Tap> x_taps = AxisTaps(xs, box.x, box.width, map_width);
  const std::vector<Tap> y_taps = AxisTaps(ys, box.y, box.height, map_height);

  // Separable: interpolate two map rows vertically once per photo row, then horizontally.
  std::vector<float> row(static_cast<size_t>(map_width));
  for (int py = ys.begin; py < ys.end; ++py) {
    const Tap& ty = y_taps[static_cast<size_t>(py - ys.begin)];
    const float* r0 = clamped.data() + static_cast<size_t>(ty.i0) * map_width;
    const float* r1 = clamped.data() + static_cast<size_t>(ty.i1) * map_width;
    for (int j = 0; j < map_width; ++j) row[j] = r0[j] + ty.w * (r1[j] - r0[j]);

    const size_t offset = static_cast<size_t>(py) * photo_width;
    float* values = out.values.data() + offset + xs.begin;
    for (size_t k = 0; k < x_taps.size(); ++k) {
      const Tap& tx = x_taps[k];
      const float a = row[tx.i0];
      const float b = row[tx.i1];
      // a + w * (b - a) can round one ulp above max(a, b) <= 1, never below 0.
      values[k] = std::min(a + tx.w * (b - a), 1.0f);
    }
    std::memset(out.seen.data() + offset + xs.begin, 1, static_cast<size_t>(xs.end - xs.begin));
  }
  return out;
}

std::vector<uint8_t> RenderHeatmapRgba(const PhotoMap& map, Colormap colormap) {
  if (!IsWellFormed(map)) return {};
  // RGBA of each table entry, as the 4 bytes will lie in memory.
  const auto& table = ColormapTable(colormap);
  std::array<uint32_t, 256> rgba_table;
  for (int i = 0; i < 256; ++i) {
    const uint8_t px[4] = {table[i][0], table[i][1], table[i][2], 255};
    std::memcpy(&rgba_table[i], px, 4);
  }
  const size_t n = map.values.size();
  std::vector<uint8_t> rgba(n * 4);
  const float* values = map.values.data();
  const uint8_t* seen = map.seen.data();
  uint8_t* out = rgba.data();
  for (size_t i = 0; i < n; ++i) {
    const uint32_t px = seen[i] != 0 ? rgba_table[ColorIndex(values[i])] : 0;  // unseen: (0,0,0,0)
    std::memcpy(out + i * 4, &px, 4);
  }
  return rgba;
}

absl::StatusOr<std::vector<uint8_t>> OverlayRgb(absl::Span<const uint8_t> rgb, const PhotoMap& map,
                                                Colormap colormap, float alpha, float unseen_dim) {
  if (!(alpha > 0.0f && alpha <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("alpha ", alpha, " is not in (0, 1]"));
  }
  if (!(unseen_dim >= 0.0f && unseen_dim <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrCat("unseen_dim ", unseen_dim, " is not in [0, 1]"));
  }
  if (!IsWellFormed(map)) {
    return absl::InvalidArgumentError(absl::StrCat("photo map is malformed: ", map.width, "x",
                                                   map.height, " with ", map.values.size(),
                                                   " values and ", map.seen.size(), " seen flags"));
  }
  const size_t n = map.values.size();
  if (rgb.size() != n * 3) {
    return absl::InvalidArgumentError(absl::StrCat("photo has ", rgb.size(), " bytes, a ",
                                                   map.width, "x", map.height, " RGB photo needs ",
                                                   n * 3));
  }

  // Every product is tabulated in 16.16 fixed point, so the loop is lookups, one add and a shift
  // per channel: out = floor((1 - alpha) * photo + alpha * colour + 1/2), exact up to 2^-15.
  const auto& table = ColormapTable(colormap);
  constexpr double kOne = 65536.0;
  std::array<uint32_t, 256> photo_part;
  std::array<uint8_t, 256> dimmed;
  std::array<std::array<uint32_t, 3>, 256> colour_part;
  for (int i = 0; i < 256; ++i) {
    photo_part[i] = static_cast<uint32_t>(std::lround(((1.0 - alpha) * i + 0.5) * kOne));
    dimmed[i] = static_cast<uint8_t>(std::min(255.0, std::floor(unseen_dim * i + 0.5)));
    for (int c = 0; c < 3; ++c) {
      colour_part[i][c] = static_cast<uint32_t>(std::lround(alpha * table[i][c] * kOne));
    }
  }

  std::vector<uint8_t> out(n * 3);
  const uint8_t* in = rgb.data();
  const float* values = map.values.data();
  const uint8_t* seen = map.seen.data();
  uint8_t* dst = out.data();
  for (size_t i = 0; i < n; ++i, in += 3, dst += 3) {
    if (seen[i] == 0) {
      dst[0] = dimmed[in[0]];
      dst[1] = dimmed[in[1]];
      dst[2] = dimmed[in[2]];
      continue;
    }
    const std::array<uint32_t, 3>& c = colour_part[ColorIndex(values[i])];
    // At most (255 + 1/2) * 2^16 (alpha = 0 or 1): the shift yields at most 255.
    dst[0] = static_cast<uint8_t>((photo_part[in[0]] + c[0]) >> 16);
    dst[1] = static_cast<uint8_t>((photo_part[in[1]] + c[1]) >> 16);
    dst[2] = static_cast<uint8_t>((photo_part[in[2]] + c[2]) >> 16);
  }
  return out;
}

}  // namespace cropshield::explain
