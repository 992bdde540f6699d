// Predict through the core, on the front end's thread: admit -> checks and the call's bytes ->
// optional response cache -> queued for a worker to decode and preprocess (jobs.h); the predict
// batch thread takes it from there (predict_batch.cc).
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/inference_core.h"
#include "server/core/jobs.h"

namespace cropshield::core {

void InferenceCore::Predict(const cropshield::v1::PredictRequest& request,
                            cropshield::v1::PredictResponse* response, Responder* responder) {
  AcceptImageCall<PredictJob>(Rpc::kPredict, request, response, responder);
}

// On the front end's thread: top_k and size checks, the call's bytes, the optional response cache.
bool InferenceCore::Plan(PredictJob& job) {
  absl::StatusOr<int> top_k = ResolveTopK(job.request->top_k(), job.model->num_classes());
  absl::Status valid =
      top_k.ok() ? CheckImageSize(job.request->image().data(), options_.limits) : top_k.status();
  if (!valid.ok()) {
    job.call->Finish(valid);
    return false;
  }
  if (!ReserveRequestBytes(job)) return false;
  job.top_k = *top_k;
  if (predict_cache_ == nullptr) return true;
  // The cached bytes hold everything but the per-call fields.
  job.key = CacheKeyFor(job, absl::StrCat("predict|k=", job.top_k));
  return !AnswerFromCacheOrLead(predict_cache_.get(), job);
}

void InferenceCore::Queue(const std::shared_ptr<PredictJob>& job) {
  PrepareThenBatch(job, predict_batcher_.get(), "predict_batcher");
}

}  // namespace cropshield::core
