// Predict on the predict batch thread: drop calls that died while queued, one forward per model in
// the batch, top-k answer, cache completion and timing, then the call's one Finish.
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/stopwatch.h"
#include "server/core/inference_core.h"
#include "server/core/jobs.h"

namespace cropshield::core {

void InferenceCore::RunPredictBatch(std::vector<std::shared_ptr<PredictJob>> jobs) {
  // Calls cancelled or past their deadline while queued are dropped before inference.
  std::vector<std::shared_ptr<PredictJob>> alive_jobs;
  for (auto& job : jobs) {
    if (!job->leader) {
      absl::Status alive = job->call->CheckAlive();
      if (!alive.ok()) {
        job->queue_us += job->batch_wait.ElapsedMicros();
        FinishJob(job, alive);
        continue;
      }
    }
    alive_jobs.push_back(std::move(job));
  }
  for (auto& [model, group] : GroupByModel(std::move(alive_jobs))) {
    const int batch = static_cast<int>(group.size());
    const int classes = model->num_classes();
    std::vector<float> probabilities(static_cast<size_t>(batch) * classes);
    Stopwatch inference;
    absl::Status status = model->Classify(BatchInputs(group), absl::MakeSpan(probabilities));
    const int64_t inference_us = inference.ElapsedMicros();
    telemetry_->ObserveBatchSize("predict", batch);
    for (int i = 0; i < batch; ++i) {
      if (!status.ok()) {
        FinishJob(group[i], status);
        continue;
      }
      group[i]->inference_us = inference_us;
      AnswerPredictJob(
          *group[i], *model,
          absl::MakeConstSpan(probabilities).subspan(static_cast<size_t>(i) * classes, classes));
      FinishJob(group[i], absl::OkStatus());
    }
  }
}

void InferenceCore::AnswerPredictJob(PredictJob& job, const engine::Model& model,
                                     absl::Span<const float> probabilities) {
  cropshield::v1::PredictResponse* response = job.response;
  for (cropshield::v1::Prediction& p : TopK(probabilities, job.top_k, model.metadata())) {
    *response->add_predictions() = std::move(p);
  }
  response->mutable_model()->set_name(model.name());
  response->mutable_model()->set_version(model.version());
  response->set_image_width(job.prepared.decoded.full_width);
  response->set_image_height(job.prepared.decoded.full_height);
}

void InferenceCore::FinishJob(const std::shared_ptr<PredictJob>& job, const absl::Status& status) {
  if (!status.ok()) {
    if (job->leader) predict_cache_->Complete(job->key, status);
    return job->call->Finish(status);
  }
  cropshield::v1::PredictResponse* response = job->response;
  if (job->leader) {
    predict_cache_->Complete(job->key,
                             std::make_shared<const std::string>(response->SerializeAsString()));
  }
  response->set_request_id(job->request->request_id());
  cropshield::v1::Timing* timing = response->mutable_timing();
  timing->set_decode_us(job->prepared.decode_us);
  timing->set_preprocess_us(job->prepared.preprocess_us);
  timing->set_queue_us(job->queue_us);
  timing->set_inference_us(job->inference_us);
  timing->set_total_us(job->call->ElapsedMicros());
  job->call->Finish(absl::OkStatus(), timing);
}

}  // namespace cropshield::core
