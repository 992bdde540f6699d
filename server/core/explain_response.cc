#include "server/core/explain_response.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/stopwatch.h"
#include "server/explain/render.h"
#include "server/image/decode.h"
#include "server/image/resize.h"

namespace cropshield::core {
namespace {

using cropshield::v1::ExplainOutputs;

explain::Colormap ToColormap(cropshield::v1::Colormap colormap) {
  switch (colormap) {
    case cropshield::v1::COLORMAP_TURBO:
      return explain::Colormap::kTurbo;
    case cropshield::v1::COLORMAP_VIRIDIS:
      return explain::Colormap::kViridis;
    default:
      return explain::Colormap::kJet;
  }
}

void SetFloatMap(const float* values, int width, int height, cropshield::v1::FloatMap* out) {
  out->set_width(width);
  out->set_height(height);
  // Little-endian float32 on the platforms we build for (x86-64, aarch64).
  out->mutable_data()->assign(reinterpret_cast<const char*>(values),
                              static_cast<size_t>(width) * height * sizeof(float));
}

}  // namespace

absl::StatusOr<ExplainPlan> PlanExplain(const cropshield::v1::ExplainRequest& request,
                                        const engine::Model& model) {
  return PlanExplain(request, model.metadata());
}

namespace {

void SetPredictions(const engine::Model& model, const ExplainPlan& plan,
                    const PreparedImage& prepared, const engine::CamResult& cam,
                    cropshield::v1::ExplainResponse* response) {
  const cropshield::v1::ModelMetadata& meta = model.metadata();
  cropshield::v1::Prediction* target = response->mutable_target();
  target->set_class_index(cam.target_class);
  target->set_label(meta.labels(cam.target_class));
  target->set_probability(cam.probabilities[cam.target_class]);
  for (cropshield::v1::Prediction& p : TopK(cam.probabilities, plan.top_k, meta)) {
    *response->add_predictions() = std::move(p);
  }
  response->set_method(plan.method_proto);
  response->mutable_model()->set_name(model.name());
  response->mutable_model()->set_version(model.version());
  cropshield::v1::CropBox* box = response->mutable_crop_box();
  box->set_x(static_cast<float>(prepared.crop_box.x));
  box->set_y(static_cast<float>(prepared.crop_box.y));
  box->set_width(static_cast<float>(prepared.crop_box.width));
  box->set_height(static_cast<float>(prepared.crop_box.height));
}

// The crop box in the coordinates of a photo drawn at `size`.
image::CropBox ScaledCropBox(const PreparedImage& prepared, OutputSize size) {
  const double sx = static_cast<double>(size.width) / prepared.decoded.full_width;
  const double sy = static_cast<double>(size.height) / prepared.decoded.full_height;
  const image::CropBox& box = prepared.crop_box;
  return image::CropBox{box.x * sx, box.y * sy, box.width * sx, box.height * sy};
}

// The photo's RGB pixels at `size`: the ones PrepareImage kept, or the photo decoded again (JPEG at
// the smallest DCT scale that still covers `size`) and downscaled.
absl::StatusOr<std::vector<uint8_t>> PhotoAt(const PreparedImage& prepared,
                                             absl::string_view image_bytes,
                                             const ImageLimits& limits, OutputSize size) {
  const image::DecodedImage& kept = prepared.decoded;
  if (!kept.rgb.empty() && kept.width == size.width && kept.height == size.height) return kept.rgb;
  image::DecodeOptions options;
  options.max_pixels = limits.max_image_pixels;
  options.min_shorter_side = std::min(size.width, size.height);
  CS_ASSIGN_OR_RETURN(image::DecodedImage photo, image::DecodeImage(image_bytes, options));
  return image::ResizeRgb(photo.rgb, photo.width, photo.height, size.width, size.height);
}

absl::Status RenderOverlay(const ExplainPlan& plan, const explain::PhotoMap& photo_map,
                           std::vector<uint8_t> photo, cropshield::v1::ExplainResponse* response) {
  const ExplainOutputs& out = plan.outputs;
  CS_ASSIGN_OR_RETURN(
      std::vector<uint8_t> blended,
      explain::OverlayRgb(photo, photo_map, ToColormap(out.colormap()), out.overlay_alpha()));
  std::vector<uint8_t>().swap(photo);
  const int width = photo_map.width;
  const int height = photo_map.height;
  if (out.overlay_encoding() == cropshield::v1::IMAGE_ENCODING_JPEG) {
    CS_ASSIGN_OR_RETURN(*response->mutable_overlay(),
                        explain::EncodeJpeg(blended, width, height, out.jpeg_quality()));
  } else {
    CS_ASSIGN_OR_RETURN(*response->mutable_overlay(),
                        explain::EncodePng(blended, width, height, 3));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RenderExplainResponse(const engine::Model& model, const ExplainPlan& plan,
                                   const PreparedImage& prepared, absl::string_view image_bytes,
                                   const ImageLimits& limits, OutputSize size,
                                   const engine::CamResult& cam,
                                   cropshield::v1::ExplainResponse* response) {
  Stopwatch watch;
  const ExplainOutputs& out = plan.outputs;
  SetPredictions(model, plan, prepared, cam, response);
  if (out.feature_map()) {
    SetFloatMap(cam.map.data(), cam.map_width, cam.map_height, response->mutable_feature_map());
  }
  if (out.image_map() || out.heatmap_png() || out.overlay()) {
    CS_ASSIGN_OR_RETURN(
        explain::PhotoMap photo_map,
        explain::PlaceOnPhoto(cam.map, cam.map_width, cam.map_height, ScaledCropBox(prepared, size),
                              size.width, size.height));
    if (out.image_map()) {
      SetFloatMap(photo_map.values.data(), size.width, size.height, response->mutable_image_map());
    }
    if (out.heatmap_png()) {
      std::vector<uint8_t> rgba = explain::RenderHeatmapRgba(photo_map, ToColormap(out.colormap()));
      CS_ASSIGN_OR_RETURN(*response->mutable_heatmap_png(),
                          explain::EncodePng(rgba, size.width, size.height, 4));
    }
    if (out.overlay()) {
      CS_ASSIGN_OR_RETURN(std::vector<uint8_t> photo, PhotoAt(prepared, image_bytes, limits, size));
      CS_RETURN_IF_ERROR(RenderOverlay(plan, photo_map, std::move(photo), response));
    }
  }
  response->mutable_timing()->set_encode_us(watch.ElapsedMicros());
  return absl::OkStatus();
}

}  // namespace cropshield::core
