// Validation of Predict and Explain requests that needs only the model's metadata, not the model:
// image size limits, top_k bounds, the Explain target class, method and output options. Torch-free
// (library cropshield_request_validation) so that the request fuzzer can run it.
//
// Thread-safety: functions are reentrant.
#ifndef CROPSHIELD_SERVER_SERVICE_REQUEST_VALIDATION_H_
#define CROPSHIELD_SERVER_SERVICE_REQUEST_VALIDATION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/cropshield.pb.h"
#include "cropshield/v1/model_metadata.pb.h"
#include "server/engine/model.h"  // engine::CamMethod only (a torch-free header)

namespace cropshield::service {

struct ImageLimits {
  int64_t max_image_bytes = 10 << 20;
  int64_t max_image_pixels = 40'000'000;
};

// INVALID_ARGUMENT for empty or oversized images; cheap, call before queueing.
absl::Status CheckImageSize(absl::string_view bytes, const ImageLimits& limits);

// Resolves the requested top_k (0 means 3) against the model's class count.
absl::StatusOr<int> ResolveTopK(int requested, int num_classes);

// A validated Explain request with defaults filled in.
struct ExplainPlan {
  int target_class = -1;  // -1: top-1
  engine::CamMethod method = engine::CamMethod::kGradCam;
  cropshield::v1::ExplainMethod method_proto = cropshield::v1::EXPLAIN_METHOD_GRAD_CAM;
  cropshield::v1::ExplainOutputs outputs;  // colormap, encoding, alpha and quality resolved
  int top_k = 3;
};

// INVALID_ARGUMENT naming the field for out-of-range classes, unknown labels or methods, bad alpha
// or JPEG quality. `metadata` is the answering model's (labels and name are used).
absl::StatusOr<ExplainPlan> PlanExplain(const cropshield::v1::ExplainRequest& request,
                                        const cropshield::v1::ModelMetadata& metadata);

// The part of the cache key that depends on the request beyond model and image.
std::string ExplainCacheVariant(const ExplainPlan& plan);

}  // namespace cropshield::service

#endif  // CROPSHIELD_SERVER_SERVICE_REQUEST_VALIDATION_H_
