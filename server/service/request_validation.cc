#include "server/service/request_validation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace cropshield::service {

using cropshield::v1::ExplainOutputs;

absl::Status CheckImageSize(absl::string_view bytes, const ImageLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError("image.data is empty");
  if (static_cast<int64_t>(bytes.size()) > limits.max_image_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", bytes.size(), " bytes, over the limit of ",
                     limits.max_image_bytes, " bytes (--max_image_bytes)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ResolveTopK(int requested, int num_classes) {
  if (requested == 0) return std::min(3, num_classes);
  if (requested < 0 || requested > num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_k must be in 1..", num_classes, " (0 means 3), got ", requested));
  }
  return requested;
}

absl::StatusOr<ExplainPlan> PlanExplain(const cropshield::v1::ExplainRequest& request,
                                        const cropshield::v1::ModelMetadata& metadata) {
  ExplainPlan plan;
  const int classes = metadata.labels_size();
  switch (request.target_case()) {
    case cropshield::v1::ExplainRequest::kClassIndex:
      if (request.class_index() < 0 || request.class_index() >= classes) {
        return absl::InvalidArgumentError(absl::StrCat("class_index must be in 0..", classes - 1,
                                                       ", got ", request.class_index()));
      }
      plan.target_class = request.class_index();
      break;
    case cropshield::v1::ExplainRequest::kClassLabel: {
      const auto& labels = metadata.labels();
      auto it = std::find(labels.begin(), labels.end(), request.class_label());
      if (it == labels.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "class_label '", request.class_label(), "' is not a label of model ", metadata.name()));
      }
      plan.target_class = static_cast<int>(it - labels.begin());
      break;
    }
    default:
      plan.target_class = -1;
  }
  switch (request.method()) {
    case cropshield::v1::EXPLAIN_METHOD_UNSPECIFIED:
    case cropshield::v1::EXPLAIN_METHOD_GRAD_CAM:
      plan.method = engine::CamMethod::kGradCam;
      plan.method_proto = cropshield::v1::EXPLAIN_METHOD_GRAD_CAM;
      break;
    case cropshield::v1::EXPLAIN_METHOD_GRAD_CAM_PLUS_PLUS:
      plan.method = engine::CamMethod::kGradCamPlusPlus;
      plan.method_proto = request.method();
      break;
    case cropshield::v1::EXPLAIN_METHOD_HIRES_CAM:
      plan.method = engine::CamMethod::kHiResCam;
      plan.method_proto = request.method();
      break;
    case cropshield::v1::EXPLAIN_METHOD_LAYER_CAM:
      plan.method = engine::CamMethod::kLayerCam;
      plan.method_proto = request.method();
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown explain method ", request.method()));
  }
  ExplainOutputs& out = plan.outputs;
  out = request.outputs();
  if (!out.feature_map() && !out.image_map() && !out.heatmap_png() && !out.overlay()) {
    out.set_feature_map(true);
  }
  if (out.colormap() == cropshield::v1::COLORMAP_UNSPECIFIED) {
    out.set_colormap(cropshield::v1::COLORMAP_JET);
  } else if (!cropshield::v1::Colormap_IsValid(out.colormap())) {
    return absl::InvalidArgumentError(absl::StrCat("unknown colormap ", out.colormap()));
  }
  if (out.overlay_encoding() == cropshield::v1::IMAGE_ENCODING_UNSPECIFIED) {
    out.set_overlay_encoding(cropshield::v1::IMAGE_ENCODING_PNG);
  } else if (!cropshield::v1::ImageEncoding_IsValid(out.overlay_encoding())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown overlay_encoding ", out.overlay_encoding()));
  }
  if (out.overlay_alpha() == 0) out.set_overlay_alpha(0.5f);
  if (!(out.overlay_alpha() > 0 && out.overlay_alpha() <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("overlay_alpha must be in (0, 1], got ", out.overlay_alpha()));
  }
  if (out.jpeg_quality() == 0) out.set_jpeg_quality(90);
  if (out.jpeg_quality() < 1 || out.jpeg_quality() > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("jpeg_quality must be in 1..100, got ", out.jpeg_quality()));
  }
  // Options that do not change the result must not split the cache.
  if (!out.overlay()) {
    out.clear_overlay_encoding();
    out.clear_overlay_alpha();
    out.clear_jpeg_quality();
  } else if (out.overlay_encoding() != cropshield::v1::IMAGE_ENCODING_JPEG) {
    out.clear_jpeg_quality();
  }
  if (!out.overlay() && !out.heatmap_png()) out.clear_colormap();
  CS_ASSIGN_OR_RETURN(plan.top_k, ResolveTopK(request.top_k(), classes));
  return plan;
}

std::string ExplainCacheVariant(const ExplainPlan& plan) {
  const ExplainOutputs& o = plan.outputs;
  return absl::StrCat("explain|class=", plan.target_class, "|method=", plan.method_proto,
                      "|k=", plan.top_k, "|fm=", o.feature_map(), "|im=", o.image_map(),
                      "|hm=", o.heatmap_png(), "|cm=", o.colormap(), "|ov=", o.overlay(),
                      "|enc=", o.overlay_encoding(), "|alpha=", o.overlay_alpha(),
                      "|q=", o.jpeg_quality());
}

}  // namespace cropshield::service
