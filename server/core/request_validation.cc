#include "server/core/request_validation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/image/decode.h"

namespace cropshield::core {

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

absl::Status CheckRequestId(absl::string_view request_id) {
  if (request_id.size() > kMaxRequestIdLength) {
    return absl::InvalidArgumentError(absl::StrCat("request_id is ", request_id.size(),
                                                   " characters, over the limit of ",
                                                   kMaxRequestIdLength));
  }
  for (size_t i = 0; i < request_id.size(); ++i) {
    const auto c = static_cast<unsigned char>(request_id[i]);
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrCat("request_id may hold printable ASCII only (0x20-0x7e); byte ", i, " is 0x",
                       absl::Hex(c, absl::kZeroPad2)));
    }
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

namespace {

// The class to explain: by index, by label, or -1 (the top-1 class, decided after the forward).
absl::StatusOr<int> ResolveTargetClass(const cropshield::v1::ExplainRequest& request,
                                       const cropshield::v1::ModelMetadata& metadata) {
  const int classes = metadata.labels_size();
  switch (request.target_case()) {
    case cropshield::v1::ExplainRequest::kClassIndex:
      if (request.class_index() < 0 || request.class_index() >= classes) {
        return absl::InvalidArgumentError(absl::StrCat("class_index must be in 0..", classes - 1,
                                                       ", got ", request.class_index()));
      }
      return request.class_index();
    case cropshield::v1::ExplainRequest::kClassLabel: {
      const auto& labels = metadata.labels();
      auto it = std::find(labels.begin(), labels.end(), request.class_label());
      if (it == labels.end()) {
        // The echo is bounded and escaped: the label is the caller's text.
        return absl::InvalidArgumentError(
            absl::StrCat("class_label '", absl::CHexEscape(request.class_label().substr(0, 64)),
                         request.class_label().size() > 64 ? "..." : "",
                         "' is not a label of model ", metadata.name()));
      }
      return static_cast<int>(it - labels.begin());
    }
    default:
      return -1;
  }
}

// The CAM method (unspecified means Grad-CAM) into plan.method and plan.method_proto.
absl::Status ResolveMethod(cropshield::v1::ExplainMethod method, ExplainPlan& plan) {
  plan.method_proto = method;
  switch (method) {
    case cropshield::v1::EXPLAIN_METHOD_UNSPECIFIED:
    case cropshield::v1::EXPLAIN_METHOD_GRAD_CAM:
      plan.method = engine::CamMethod::kGradCam;
      plan.method_proto = cropshield::v1::EXPLAIN_METHOD_GRAD_CAM;
      return absl::OkStatus();
    case cropshield::v1::EXPLAIN_METHOD_GRAD_CAM_PLUS_PLUS:
      plan.method = engine::CamMethod::kGradCamPlusPlus;
      return absl::OkStatus();
    case cropshield::v1::EXPLAIN_METHOD_HIRES_CAM:
      plan.method = engine::CamMethod::kHiResCam;
      return absl::OkStatus();
    case cropshield::v1::EXPLAIN_METHOD_LAYER_CAM:
      plan.method = engine::CamMethod::kLayerCam;
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown explain method ", method));
  }
}

// Defaults filled in and ranges checked for the outputs' rendering options.
absl::Status ResolveRendering(ExplainOutputs& out) {
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
  return absl::OkStatus();
}

// Options that do not change the result must not split the cache.
void ClearUnusedRendering(ExplainOutputs& out) {
  if (!out.overlay()) {
    out.clear_overlay_encoding();
    out.clear_overlay_alpha();
    out.clear_jpeg_quality();
  } else if (out.overlay_encoding() != cropshield::v1::IMAGE_ENCODING_JPEG) {
    out.clear_jpeg_quality();
  }
  if (!out.overlay() && !out.heatmap_png()) out.clear_colormap();
}

}  // namespace

absl::StatusOr<ExplainPlan> PlanExplain(const cropshield::v1::ExplainRequest& request,
                                        const cropshield::v1::ModelMetadata& metadata) {
  ExplainPlan plan;
  CS_ASSIGN_OR_RETURN(plan.target_class, ResolveTargetClass(request, metadata));
  CS_RETURN_IF_ERROR(ResolveMethod(request.method(), plan));
  ExplainOutputs& out = plan.outputs;
  out = request.outputs();
  if (!out.feature_map() && !out.image_map() && !out.heatmap_png() && !out.overlay()) {
    out.set_feature_map(true);
  }
  CS_RETURN_IF_ERROR(ResolveRendering(out));
  ClearUnusedRendering(out);
  CS_ASSIGN_OR_RETURN(plan.top_k, ResolveTopK(request.top_k(), metadata.labels_size()));
  return plan;
}

OutputSize ExplainOutputSize(int photo_width, int photo_height, int64_t max_output_pixels) {
  const int64_t pixels = int64_t{photo_width} * photo_height;
  if (pixels <= max_output_pixels || max_output_pixels <= 0) return {photo_width, photo_height};
  const double scale = std::sqrt(static_cast<double>(max_output_pixels) / pixels);
  OutputSize size{std::max(1, static_cast<int>(photo_width * scale)),
                  std::max(1, static_cast<int>(photo_height * scale))};
  // Rounding down keeps the product within the cap but for sides clamped to 1.
  while (size.pixels() > max_output_pixels && size.width > 1) --size.width;
  while (size.pixels() > max_output_pixels && size.height > 1) --size.height;
  return size;
}

absl::StatusOr<OutputSize> PlanExplainOutputs(const ExplainPlan& plan, absl::string_view image,
                                              const ImageLimits& limits) {
  CS_ASSIGN_OR_RETURN(image::ImageInfo info, image::ProbeImage(image));
  const int64_t pixels = int64_t{info.width} * info.height;
  if (pixels > limits.max_image_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "image is ", info.width, "x", info.height, " = ", pixels, " pixels, over the limit of ",
        limits.max_image_pixels, " (--max_image_pixels)"));
  }
  const bool transposed = info.orientation >= 5;  // EXIF 5-8 swap width and height
  const OutputSize size =
      ExplainOutputSize(transposed ? info.height : info.width,
                        transposed ? info.width : info.height, limits.explain_max_output_pixels);
  constexpr int kMaxJpegSide = 65500;  // TurboJPEG's limit
  const ExplainOutputs& o = plan.outputs;
  if (o.overlay() && o.overlay_encoding() == cropshield::v1::IMAGE_ENCODING_JPEG &&
      std::max(size.width, size.height) > kMaxJpegSide) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a JPEG overlay of ", size.width, "x", size.height, " pixels is over JPEG's limit of ",
        kMaxJpegSide, " per side; ask for a PNG overlay"));
  }
  return size;
}

int64_t EstimateExplainBytes(const ExplainPlan& plan, OutputSize size) {
  const ExplainOutputs& o = plan.outputs;
  // Per output pixel. Encoded outputs are counted at their raw size (an upper bound for PNG of
  // noise), each response byte three times: the message, the cache's serialized copy and gRPC's.
  int64_t per_pixel = 0;
  if (o.image_map()) per_pixel += 4 * 3;
  if (o.heatmap_png()) per_pixel += 4 + 4 * 3;        // RGBA buffer + PNG
  if (o.overlay()) per_pixel += 3 + 3 + 3 * 3;        // photo + blend + encoded
  if (per_pixel > 0) per_pixel += sizeof(float) + 1;  // the map placed on the photo (values, seen)
  constexpr int64_t kFixed = 1 << 20;                 // feature map, predictions, protobuf overhead
  return kFixed + per_pixel * size.pixels();
}

std::string ExplainCacheVariant(const ExplainPlan& plan) {
  const ExplainOutputs& o = plan.outputs;
  return absl::StrCat("explain|class=", plan.target_class, "|method=", plan.method_proto,
                      "|k=", plan.top_k, "|fm=", o.feature_map(), "|im=", o.image_map(),
                      "|hm=", o.heatmap_png(), "|cm=", o.colormap(), "|ov=", o.overlay(),
                      "|enc=", o.overlay_encoding(), "|alpha=", o.overlay_alpha(),
                      "|q=", o.jpeg_quality());
}

}  // namespace cropshield::core
