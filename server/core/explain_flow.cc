// Explain through the core: admit and plan from the image header -> explanation cache
// (hit, follower, or leader) -> worker decodes and preprocesses -> explain batcher: one backbone +
// head + gradient pass per model in the batch -> worker renders and encodes -> cache -> answer.
#include <utility>

#include "server/core/explain_response.h"
#include "server/core/inference_core.h"
#include "server/core/jobs.h"

namespace cropshield::core {

void InferenceCore::Explain(const cropshield::v1::ExplainRequest& request,
                            cropshield::v1::ExplainResponse* response, Responder* responder) {
  AcceptImageCall<ExplainJob>(Rpc::kExplain, request, response, responder);
}

// On the front end's thread: the plan (class, method, outputs, and the photo-sized outputs' size
// from the image header, so that their memory is reserved or refused before any work), the call's
// bytes and the explanation cache.
bool InferenceCore::Plan(ExplainJob& job) {
  const cropshield::v1::ExplainRequest& request = *job.request;
  absl::StatusOr<ExplainPlan> plan = PlanExplain(request, *job.model);
  absl::Status valid =
      plan.ok() ? CheckImageSize(request.image().data(), options_.limits) : plan.status();
  absl::StatusOr<OutputSize> output =
      valid.ok() ? PlanExplainOutputs(*plan, request.image().data(), options_.limits) : valid;
  if (!output.ok()) {
    job.call->Finish(output.status());
    return false;
  }
  if (!ReserveRequestBytes(job) ||
      !Reserve(*job.call, render_bytes_, EstimateExplainBytes(*plan, *output),
               "explain_render_bytes", "--explain_render_budget_bytes")) {
    return false;
  }
  job.plan = *std::move(plan);
  job.output = *output;
  job.key = CacheKeyFor(job, ExplainCacheVariant(job.plan));
  return request.bypass_cache() || !AnswerFromCacheOrLead(explain_cache_.get(), job);
}

void InferenceCore::Queue(const std::shared_ptr<ExplainJob>& job) {
  PrepareThenBatch(job, explain_batcher_.get(), "explain_batcher");
}

void InferenceCore::RunExplainBatch(std::vector<std::shared_ptr<ExplainJob>> jobs) {
  for (auto& [model, group] : GroupByModel(std::move(jobs))) {
    telemetry_->ObserveBatchSize("explain", static_cast<int>(group.size()));
    std::vector<engine::CamRequest> requests;
    for (const auto& job : group) requests.push_back({job->plan.target_class, job->plan.method});
    engine::ExplainTiming timing;
    absl::StatusOr<std::vector<engine::CamResult>> cams =
        model->Explain(BatchInputs(group), requests, &timing);
    for (size_t i = 0; i < group.size(); ++i) {
      std::shared_ptr<ExplainJob> job = group[i];
      if (!cams.ok()) {
        FinishJob(job, cams.status());
        continue;
      }
      job->cam = std::move((*cams)[i]);
      job->inference_us = timing.backbone_us;
      job->explain_us = timing.cam_us;
      // Rendering and encoding run in parallel on the workers; inline if their queue is full.
      auto render = [this, job] { RenderExplainJob(job); };
      if (!executor_->TrySubmit(render)) render();
    }
  }
}

void InferenceCore::RenderExplainJob(const std::shared_ptr<ExplainJob>& job) {
  absl::Status rendered =
      RenderExplainResponse(*job->model, job->plan, job->prepared, job->request->image().data(),
                            options_.limits, job->output, job->cam, job->response);
  if (!rendered.ok()) return FinishJob(job, rendered);
  // The cached bytes hold no per-call timing.
  const int64_t encode_us = job->response->timing().encode_us();
  job->response->clear_timing();
  auto value = std::make_shared<const std::string>(job->response->SerializeAsString());
  cropshield::v1::Timing* t = job->response->mutable_timing();
  t->set_decode_us(job->prepared.decode_us);
  t->set_preprocess_us(job->prepared.preprocess_us);
  t->set_queue_us(job->queue_us);
  t->set_inference_us(job->inference_us);
  t->set_explain_us(job->explain_us);
  t->set_encode_us(encode_us);
  FinishJob(job, std::move(value));
}

void InferenceCore::FinishJob(const std::shared_ptr<ExplainJob>& job,
                              absl::StatusOr<cache::Value> result) {
  if (job->leader) {
    explain_cache_->Complete(job->key, result);
  } else if (result.ok()) {
    explain_cache_->Insert(job->key, *result);  // bypass_cache still refreshes the cache
  }
  if (!result.ok()) return job->call->Finish(result.status());
  job->response->set_cached(false);
  job->response->set_request_id(job->request->request_id());
  job->response->mutable_timing()->set_total_us(job->call->ElapsedMicros());
  job->call->Finish(absl::OkStatus(), &job->response->timing());
}

}  // namespace cropshield::core
