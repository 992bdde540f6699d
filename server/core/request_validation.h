// Validation of Predict and Explain requests that needs only the model's metadata, not the model:
// image size limits, top_k bounds, the Explain target class, method and output options. Torch-free
// (library cropshield_request_validation) so that the request fuzzer can run it.
//
// Thread-safety: functions are reentrant.
#ifndef CROPSHIELD_SERVER_CORE_REQUEST_VALIDATION_H_
#define CROPSHIELD_SERVER_CORE_REQUEST_VALIDATION_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/cropshield.pb.h"
#include "cropshield/v1/model_metadata.pb.h"
#include "server/engine/model.h"  // engine::CamMethod only (a torch-free header)

namespace cropshield::core {

struct ImageLimits {
  int64_t max_image_bytes = 10 << 20;
  int64_t max_image_pixels = 40'000'000;
  // Explain's photo-sized outputs (image map, heatmap, overlay) are drawn at most this large:
  // larger photos get them downscaled, aspect kept (2048 x 2048 by default).
  int64_t explain_max_output_pixels = int64_t{2048} * 2048;
};

// Width and height of an image; zero when there is none.
struct OutputSize {
  int width = 0;
  int height = 0;
  int64_t pixels() const { return int64_t{width} * height; }
};

// INVALID_ARGUMENT for empty or oversized images; cheap, call before queueing.
absl::Status CheckImageSize(absl::string_view bytes, const ImageLimits& limits);

// Longest request_id accepted.
inline constexpr size_t kMaxRequestIdLength = 128;

// INVALID_ARGUMENT unless `request_id` is at most kMaxRequestIdLength printable ASCII characters
// (0x20-0x7e); it is echoed in responses and logs. Empty is fine.
absl::Status CheckRequestId(absl::string_view request_id);

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

// Size of an Explain's photo-sized outputs for a photo_width x photo_height photo (after EXIF
// orientation): the photo's own size, or scaled down by one factor in both directions (each side
// rounded down, at least 1) so that it holds at most max_output_pixels pixels.
OutputSize ExplainOutputSize(int photo_width, int photo_height, int64_t max_output_pixels);

// Plans the photo-sized outputs of `plan` from the image header alone, before any work: the photo
// size (INVALID_ARGUMENT for a corrupt header or one over limits.max_image_pixels), the output
// size, and INVALID_ARGUMENT when an asked-for output cannot be encoded at that size (a JPEG
// overlay side over 65500 pixels).
absl::StatusOr<OutputSize> PlanExplainOutputs(const ExplainPlan& plan, absl::string_view image,
                                              const ImageLimits& limits);

// Upper estimate of the bytes an Explain call holds at its peak beyond its request: render
// buffers, the response, its serialized copy for the cache and gRPC's send buffer.
int64_t EstimateExplainBytes(const ExplainPlan& plan, OutputSize size);

// The part of the cache key that depends on the request beyond model and image.
std::string ExplainCacheVariant(const ExplainPlan& plan);

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_REQUEST_VALIDATION_H_
