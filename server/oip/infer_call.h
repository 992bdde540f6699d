// One ModelInfer call through the core: each photo is its own core Predict (same admission,
// decode, batcher, caches, limits, deadlines, metrics and Stats as cropshield.v1 Predict, and the
// predict batcher groups the photos with everything else queued). The call finishes its front
// end's Responder once every photo is answered; the first error wins, with the photo's index in
// its message, and makes the photos still waiting look cancelled to the core so they stop early.
// Every photo's byte reservations go to the call's Responder, which holds them until its
// transport is done with the call.
//
// Thread-safety: photos finish on any core thread; InferCounters may be used from any thread.
#ifndef CROPSHIELD_SERVER_OIP_INFER_CALL_H_
#define CROPSHIELD_SERVER_OIP_INFER_CALL_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/stopwatch.h"
#include "cropshield/v1/cropshield.pb.h"
#include "inference/grpc_predict_v2.pb.h"
#include "server/core/call.h"
#include "server/core/inference_core.h"
#include "server/oip/tensors.h"

namespace cropshield::oip {

// What ModelInfer did, for ModelStatistics (cumulative since start).
class InferCounters {
 public:
  void Record(bool ok, int64_t photos, int64_t elapsed_ns);
  // Fills the counts and durations of `stats` (name and version are the caller's).
  void Fill(inference::ModelStatistics* stats) const;

 private:
  std::atomic<uint64_t> success_count_{0};
  std::atomic<uint64_t> success_ns_{0};
  std::atomic<uint64_t> fail_count_{0};
  std::atomic<uint64_t> fail_ns_{0};
  std::atomic<uint64_t> photos_{0};
  std::atomic<uint64_t> last_inference_ms_{0};
};

class InferCall {
 public:
  // Starts one core Predict per photo of `plan` for the model `spec` (num_classes classes) and
  // returns; `response` is filled and `responder` finished once they are all answered. `request`
  // (which the plan points into), `response`, `responder` and `counters` must stay valid until
  // then.
  static void Start(core::InferenceCore* core, const inference::ModelInferRequest& request,
                    cropshield::v1::ModelSpec spec, int num_classes, InferPlan plan,
                    inference::ModelInferResponse* response, core::Responder* responder,
                    InferCounters* counters);

 private:
  class PhotoResponder;

  InferCall(const inference::ModelInferRequest& request, cropshield::v1::ModelSpec spec,
            int num_classes, InferPlan plan, inference::ModelInferResponse* response,
            core::Responder* responder, InferCounters* counters);
  ~InferCall();
  void Launch(core::InferenceCore* core);
  void PhotoDone(size_t index, const absl::Status& status);
  // One photo (or the launcher) is done; the last one completes the call.
  void Release();
  // Fills the response (or takes the first error), deletes the call, finishes the responder.
  void Complete();

  const std::string id_;
  const int num_classes_;
  const InferPlan plan_;
  inference::ModelInferResponse* const response_;
  core::Responder* const responder_;
  InferCounters* const counters_;
  Stopwatch received_;
  std::vector<cropshield::v1::PredictRequest> requests_;
  std::vector<cropshield::v1::PredictResponse> answers_;
  std::vector<std::unique_ptr<PhotoResponder>> photo_responders_;
  std::atomic<size_t> remaining_;  // photos not yet answered, plus the launcher
  std::atomic<bool> failed_{false};
  absl::Mutex mu_;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cropshield::oip

#endif  // CROPSHIELD_SERVER_OIP_INFER_CALL_H_
