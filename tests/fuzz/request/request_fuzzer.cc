// libFuzzer target for request validation (server/core/request_validation.h): the checks the
// service runs on a PredictRequest or ExplainRequest before any work is queued. The first input
// byte picks the message (even: Predict, odd: Explain); the rest is the serialized request, as it
// arrives off the wire. Every request must be either refused with INVALID_ARGUMENT and a message,
// or accepted with every value in range; an accepted Explain plan must be a fixed point (planning
// the request it describes yields the same cache key), so that equivalent requests share the cache.
//
// Build with clang (CROPSHIELD_SANITIZE=fuzzer): ninja request_fuzzer, then
//   ./tests/fuzz/request_fuzzer tests/fuzz/request/corpus
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cropshield/v1/cropshield.pb.h"
#include "cropshield/v1/model_metadata.pb.h"
#include "server/core/request_validation.h"

namespace {

namespace v1 = cropshield::v1;
using cropshield::core::CheckImageSize;
using cropshield::core::ExplainCacheVariant;
using cropshield::core::ExplainPlan;
using cropshield::core::ImageLimits;
using cropshield::core::PlanExplain;
using cropshield::core::ResolveTopK;

void Check(bool condition) {
  if (!condition) std::abort();
}

// A refusal must say what was wrong, as INVALID_ARGUMENT.
void CheckRefusal(const absl::Status& status) {
  Check(status.code() == absl::StatusCode::kInvalidArgument && !status.message().empty());
}

const v1::ModelMetadata& Metadata() {
  static const v1::ModelMetadata* const metadata = [] {
    auto* m = new v1::ModelMetadata;
    m->set_name("cropshield-demo");
    m->set_version(1);
    for (const char* label : {"Potato__early_blight", "Potato__healthy", "Potato__late_blight",
                              "Tomato__healthy", "Wheat__brown_rust"}) {
      m->add_labels(label);
    }
    return m;
  }();
  return *metadata;
}

constexpr ImageLimits kLimits{/*max_image_bytes=*/64, /*max_image_pixels=*/4096};

void CheckTopK(int requested, const absl::StatusOr<int>& top_k, int classes) {
  if (requested >= 0 && requested <= classes) {
    Check(top_k.ok());
    Check(*top_k == (requested == 0 ? 3 : requested));
  } else {
    CheckRefusal(top_k.status());
  }
}

void CheckImage(const v1::Image& image) {
  const absl::Status status = CheckImageSize(image.data(), kLimits);
  const int64_t size = static_cast<int64_t>(image.data().size());
  if (size > 0 && size <= kLimits.max_image_bytes) {
    Check(status.ok());
  } else {
    CheckRefusal(status);
  }
}

void FuzzPredict(const v1::PredictRequest& request) {
  const int classes = Metadata().labels_size();
  CheckTopK(request.top_k(), ResolveTopK(request.top_k(), classes), classes);
  CheckImage(request.image());
}

void CheckPlan(const v1::ExplainRequest& request, const ExplainPlan& plan) {
  const int classes = Metadata().labels_size();
  Check(plan.target_class >= -1 && plan.target_class < classes);
  if (request.has_class_index()) Check(plan.target_class == request.class_index());
  if (request.has_class_label()) {
    Check(plan.target_class >= 0 && Metadata().labels(plan.target_class) == request.class_label());
  }
  if (request.target_case() == v1::ExplainRequest::TARGET_NOT_SET) Check(plan.target_class == -1);
  Check(plan.method_proto != v1::EXPLAIN_METHOD_UNSPECIFIED &&
        v1::ExplainMethod_IsValid(plan.method_proto));
  Check(plan.top_k >= 1 && plan.top_k <= classes);

  const v1::ExplainOutputs& out = plan.outputs;
  Check(out.feature_map() || out.image_map() || out.heatmap_png() || out.overlay());
  if (out.overlay() || out.heatmap_png()) {
    Check(out.colormap() != v1::COLORMAP_UNSPECIFIED && v1::Colormap_IsValid(out.colormap()));
  } else {
    Check(out.colormap() == v1::COLORMAP_UNSPECIFIED);
  }
  if (out.overlay()) {
    Check(out.overlay_encoding() == v1::IMAGE_ENCODING_PNG ||
          out.overlay_encoding() == v1::IMAGE_ENCODING_JPEG);
    Check(out.overlay_alpha() > 0 && out.overlay_alpha() <= 1);
    if (out.overlay_encoding() == v1::IMAGE_ENCODING_JPEG) {
      Check(out.jpeg_quality() >= 1 && out.jpeg_quality() <= 100);
    } else {
      Check(out.jpeg_quality() == 0);
    }
  } else {
    Check(out.overlay_encoding() == v1::IMAGE_ENCODING_UNSPECIFIED && out.overlay_alpha() == 0 &&
          out.jpeg_quality() == 0);
  }

  // The request the plan describes must plan to the same cache key.
  v1::ExplainRequest again;
  if (plan.target_class >= 0) again.set_class_index(plan.target_class);
  again.set_method(plan.method_proto);
  *again.mutable_outputs() = plan.outputs;
  again.set_top_k(plan.top_k);
  absl::StatusOr<ExplainPlan> replanned = PlanExplain(again, Metadata());
  Check(replanned.ok());
  Check(ExplainCacheVariant(*replanned) == ExplainCacheVariant(plan));
}

void FuzzExplain(const v1::ExplainRequest& request) {
  absl::StatusOr<ExplainPlan> plan = PlanExplain(request, Metadata());
  if (plan.ok()) {
    CheckPlan(request, *plan);
  } else {
    CheckRefusal(plan.status());
  }
  CheckImage(request.image());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t kind = data[0];
  ++data;
  --size;
  if (kind % 2 == 0) {
    v1::PredictRequest request;
    if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
    FuzzPredict(request);
  } else {
    v1::ExplainRequest request;
    if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
    FuzzExplain(request);
  }
  return 0;
}
