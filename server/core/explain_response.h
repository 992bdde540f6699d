// The Explain request path independent of gRPC: validating the request into a plan, and turning a
// class activation map into the response's maps and images.
//
// Thread-safety: functions are reentrant.
#ifndef CROPSHIELD_SERVER_CORE_EXPLAIN_RESPONSE_H_
#define CROPSHIELD_SERVER_CORE_EXPLAIN_RESPONSE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/prepare_image.h"
#include "server/core/request_validation.h"  // ExplainPlan, ExplainCacheVariant
#include "server/engine/model.h"

namespace cropshield::core {

// PlanExplain (request_validation.h) against `model`'s metadata.
absl::StatusOr<ExplainPlan> PlanExplain(const cropshield::v1::ExplainRequest& request,
                                        const engine::Model& model);

// Fills `response` (everything but request_id, cached and timing.total_us) from a computed map.
// The photo-sized outputs are drawn at `size` (PlanExplainOutputs), the crop box scaled alike;
// the response's crop_box stays in photo coordinates. `prepared` is the image the map was
// computed on, holding the photo at `size` if PrepareImage kept it; `image_bytes` the original
// encoded photo, decoded again for an overlay when it did not.
absl::Status RenderExplainResponse(const engine::Model& model, const ExplainPlan& plan,
                                   const PreparedImage& prepared, absl::string_view image_bytes,
                                   const ImageLimits& limits, OutputSize size,
                                   const engine::CamResult& cam,
                                   cropshield::v1::ExplainResponse* response);

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_EXPLAIN_RESPONSE_H_
