// Torch-free post-processing of class activation maps (Grad-CAM): placing the model-input-sized map
// on the full-size photo, colour maps, heatmaps, overlays and PNG/JPEG encoding to memory.
//
// Geometry: the map covers exactly the model's input square, i.e. the CropBox (full-size photo
// coordinates, see server/image/preprocess.h) that the center crop took from the photo. The map is
// resampled onto that box only; the cropped-away part of the photo is "unseen" (value 0,
// transparent in heatmaps, photo left as is in overlays), never stretched.
//
// Thread safety: every function here is reentrant and keeps no mutable shared state (the colour
// tables are constant); any number of threads may call them concurrently.
//
// Errors are reported as absl::Status (INVALID_ARGUMENT for bad arguments, naming the problem); no
// function throws, aborts or longjmps out.
#ifndef CROPSHIELD_SERVER_EXPLAIN_RENDER_H_
#define CROPSHIELD_SERVER_EXPLAIN_RENDER_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/image/preprocess.h"

namespace cropshield::explain {

enum class Colormap { kJet, kTurbo, kViridis };

// "jet", "turbo", "viridis".
absl::string_view ColormapName(Colormap colormap);
// Inverse of ColormapName (case-insensitive); INVALID_ARGUMENT for any other name.
absl::StatusOr<Colormap> ColormapFromName(absl::string_view name);

// Photos (and encoded images) larger than this many pixels are refused with INVALID_ARGUMENT.
inline constexpr int64_t kMaxRenderPixels = int64_t{1} << 28;

// A class activation map placed on a photo.
struct PhotoMap {
  int width = 0;  // photo size
  int height = 0;
  std::vector<float> values;  // width*height, row-major, in [0,1]; 0 outside the crop box
  std::vector<uint8_t>
      seen;  // width*height, 1 inside the crop box (pixel centre inside), 0 outside
};

// Resamples `map` (map_width x map_height floats, row-major, nominally in [0,1]) onto the crop box
// region of a photo_width x photo_height photo.
//
// A photo pixel (px, py) is seen when its centre lies in the half-open box:
// box.x <= px + 0.5 < box.x + box.width (likewise y). Its value is the bilinear interpolation of
// the map at u = (px + 0.5 - box.x) / box.width * map_width - 0.5, v likewise, with coordinates
// clamped to the map's edges: torch.nn.functional.interpolate(mode="bilinear", align_corners=False)
// onto the box. The box may be fractional, extend past the photo, or even miss it entirely (then
// nothing is seen). Map values are clamped to [0,1] first.
//
// INVALID_ARGUMENT when a size is not positive, map.size() != map_width * map_height, the photo has
// more than kMaxRenderPixels pixels, the box is empty or not finite, or a map value is not finite.
absl::StatusOr<PhotoMap> PlaceOnPhoto(absl::Span<const float> map, int map_width, int map_height,
                                      const image::CropBox& box, int photo_width, int photo_height);

// RGB colour of `value`, clamped to [0,1] (NaN reads as 0), from a 256-entry table indexed by
// round(value * 255), as cv::applyColorMap does for 8-bit input:
//   kJet:     OpenCV's COLORMAP_JET (MATLAB jet): dark blue (0,0,128) -> blue -> cyan -> yellow ->
//             red -> dark red (128,0,0); within 1 of OpenCV in every channel.
//   kTurbo:   Google's Turbo, (48,18,59) -> (122,4,3); equal to OpenCV's COLORMAP_TURBO.
//   kViridis: matplotlib's viridis, (68,1,84) -> (253,231,37); equal to OpenCV's COLORMAP_VIRIDIS.
std::array<uint8_t, 3> ColormapLookup(Colormap colormap, float value);

// The whole 256-entry table behind ColormapLookup (entry i is the colour of i / 255).
const std::array<std::array<uint8_t, 3>, 256>& ColormapTable(Colormap colormap);

// True when map.width/height are positive, at most kMaxRenderPixels in all, and values/seen both
// hold width*height entries (as PlaceOnPhoto makes them).
bool IsWellFormed(const PhotoMap& map);

// RGBA8 heatmap (width*height*4 bytes, row-major): ColormapLookup(value) with alpha 255 where seen,
// (0,0,0,0) where unseen. Returns an empty vector when !IsWellFormed(map).
std::vector<uint8_t> RenderHeatmapRgba(const PhotoMap& map, Colormap colormap);

// Blends the heatmap over an RGB8 photo (`rgb`: map.width*map.height*3 bytes, row-major). Where
// seen, out = round((1 - alpha) * photo + alpha * colour) per channel; where unseen, out =
// round(photo * unseen_dim) (1 leaves the photo's pixels unchanged, < 1 dims what the model did not
// see). INVALID_ARGUMENT when alpha is not in (0,1], unseen_dim not in [0,1], the map is not well
// formed or rgb.size() does not match it.
absl::StatusOr<std::vector<uint8_t>> OverlayRgb(absl::Span<const uint8_t> rgb, const PhotoMap& map,
                                                Colormap colormap, float alpha,
                                                float unseen_dim = 1.0f);

// PNG (libpng, 8 bits per channel, non-interlaced, fast zlib settings tuned for heatmaps) of
// width*height pixels, row-major, `channels` = 3 (RGB) or 4 (RGBA) interleaved bytes each.
// INVALID_ARGUMENT for non-positive or oversized dimensions, other channel counts, or
// pixels.size() != width*height*channels; INTERNAL if libpng fails.
absl::StatusOr<std::string> EncodePng(absl::Span<const uint8_t> pixels, int width, int height,
                                      int channels);

// Baseline JPEG (TurboJPEG, 4:2:0 chroma subsampling) of an RGB8 image, row-major. quality 1..100.
// INVALID_ARGUMENT for non-positive dimensions or dimensions over JPEG's 65535 limit, quality out
// of range, or rgb.size() != width*height*3; INTERNAL if TurboJPEG fails.
absl::StatusOr<std::string> EncodeJpeg(absl::Span<const uint8_t> rgb, int width, int height,
                                       int quality);

}  // namespace cropshield::explain

#endif  // CROPSHIELD_SERVER_EXPLAIN_RENDER_H_
