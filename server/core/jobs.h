// Internal to the core: the job of one Predict or Explain call on its way through
// decode -> batch -> answer, and the steps both kinds share.
#ifndef CROPSHIELD_SERVER_CORE_JOBS_H_
#define CROPSHIELD_SERVER_CORE_JOBS_H_

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "server/core/call.h"
#include "server/core/inference_core.h"
#include "server/core/prepare_image.h"

namespace cropshield::core {

// What every call's job carries on its way through decode -> batch -> answer.
template <typename Request, typename Response>
struct Job {
  using RequestType = Request;
  using ResponseType = Response;

  Job(std::shared_ptr<Call> call, const Request* request, Response* response,
      std::shared_ptr<const engine::Model> model)
      : call(std::move(call)), request(request), response(response), model(std::move(model)) {}

  std::shared_ptr<Call> call;
  const Request* request;
  Response* response;
  std::shared_ptr<const engine::Model> model;
  cache::CacheKey key;
  bool leader = false;  // owns the cache flight of `key`
  PreparedImage prepared;
  int64_t queue_us = 0;
  Stopwatch batch_wait;
  int64_t inference_us = 0;
};

struct PredictJob : Job<cropshield::v1::PredictRequest, cropshield::v1::PredictResponse> {
  using Job::Job;
  int top_k = 3;
};

struct ExplainJob : Job<cropshield::v1::ExplainRequest, cropshield::v1::ExplainResponse> {
  using Job::Job;
  ExplainPlan plan;
  OutputSize output;  // size of the photo-sized outputs (planned from the header)
  engine::CamResult cam;
  int64_t explain_us = 0;
};

// What a queued call holds of its request: the encoded photo and the model input.
inline int64_t RequestBytes(absl::string_view image, const engine::Model& model) {
  return static_cast<int64_t>(image.size()) + model.input_elements() * int64_t{sizeof(float)};
}

inline absl::Status QueueFull(size_t capacity) {
  return absl::ResourceExhaustedError(
      absl::StrCat("server queue is full (", capacity, " requests waiting); retry with backoff"));
}

// The decoded photo a job keeps until rendering: none for Predict; for an Explain overlay, the
// photo at the outputs' size (covered by the call's render reservation).
inline OutputSize PhotoToKeep(const PredictJob& /*job*/) { return {}; }
inline OutputSize PhotoToKeep(const ExplainJob& job) {
  return job.plan.outputs.overlay() ? job.output : OutputSize{};
}

// Splits a batch by model (a batch may straddle a model swap) and ends each job's batch wait.
template <typename Job>
std::map<const engine::Model*, std::vector<std::shared_ptr<Job>>> GroupByModel(
    std::vector<std::shared_ptr<Job>> jobs) {
  std::map<const engine::Model*, std::vector<std::shared_ptr<Job>>> by_model;
  for (auto& job : jobs) {
    job->queue_us += job->batch_wait.ElapsedMicros();
    by_model[job->model.get()].push_back(std::move(job));
  }
  return by_model;
}

// The group's model inputs where they are: the engine copies each once, to where it needs it.
template <typename Job>
std::vector<absl::Span<const float>> BatchInputs(const std::vector<std::shared_ptr<Job>>& group) {
  std::vector<absl::Span<const float>> images;
  images.reserve(group.size());
  for (const auto& job : group) images.emplace_back(job->prepared.input);
  return images;
}

// The job's cache key: its model version, the keyed hash of its photo, and `variant` (everything
// else that changes the answer).
template <typename JobT>
cache::CacheKey CacheKeyFor(const JobT& job, std::string variant) {
  auto [high, low] = cache::KeyedHashBytes128(job.request->image().data());
  return cache::CacheKey{job.model->name(), job.model->version(), high, low, std::move(variant)};
}

// Answers the job's call from `cache` when it can: true when the call is answered now (hit) or
// will be when an identical computation in flight completes (follower); false when the job leads
// the flight of its key and must compute, then Complete it.
template <typename JobT>
bool AnswerFromCacheOrLead(cache::ShardedLruCache* cache, JobT& job) {
  auto respond = [call = job.call, request = job.request,
                  response = job.response](absl::StatusOr<cache::Value> value) {
    if (!value.ok()) return call->Finish(value.status());
    if (!response->ParseFromString(**value)) {
      return call->Finish(absl::InternalError("corrupt cached response"));
    }
    response->set_cached(true);
    response->set_request_id(request->request_id());
    response->mutable_timing()->set_total_us(call->ElapsedMicros());
    call->Finish(absl::OkStatus());
  };
  cache::ShardedLruCache::Lookup lookup = cache->GetOrJoin(job.key, respond);
  if (lookup.role == cache::ShardedLruCache::Role::kHit) {
    respond(lookup.value);
    return true;
  }
  job.leader = lookup.role == cache::ShardedLruCache::Role::kLeader;
  return !job.leader;
}

template <typename JobT>
void InferenceCore::AcceptImageCall(Rpc rpc, const typename JobT::RequestType& request,
                                    typename JobT::ResponseType* response, Responder* responder) {
  std::shared_ptr<Call> call = StartCall(rpc, responder, request.request_id());
  if (!Admit(*call)) return;
  absl::StatusOr<std::shared_ptr<const engine::Model>> model = ModelForCall(request.model(), *call);
  if (!model.ok()) return;
  auto job = std::make_shared<JobT>(std::move(call), &request, response, *std::move(model));
  if (Plan(*job)) Queue(job);
}

template <typename JobT>
bool InferenceCore::ReserveRequestBytes(JobT& job) {
  return Reserve(*job.call, request_bytes_, RequestBytes(job.request->image().data(), *job.model),
                 "request_bytes", "--max_inflight_request_bytes");
}

template <typename JobT>
void InferenceCore::PrepareThenBatch(const std::shared_ptr<JobT>& job,
                                     Batcher<std::shared_ptr<JobT>>* batcher,
                                     const char* batcher_name) {
  auto prepare = [this, job, batcher, batcher_name]() {
    job->queue_us = job->call->ElapsedMicros();
    // A cache leader computes even for a cancelled call: followers wait for its result.
    if (!job->leader) {
      absl::Status alive = job->call->CheckAlive();
      if (!alive.ok()) return FinishJob(job, alive);
    }
    absl::StatusOr<PreparedImage> prepared =
        PrepareImage(*job->model, job->request->image().data(), options_.limits, PhotoToKeep(*job));
    if (!prepared.ok()) return FinishJob(job, prepared.status());
    job->prepared = *std::move(prepared);
    job->batch_wait = Stopwatch();
    if (!batcher->TrySubmit(job)) {
      telemetry_->CountRejected(batcher_name);
      FinishJob(job, QueueFull(options_.queue_capacity));
    }
  };
  if (!executor_->TrySubmit(std::move(prepare))) {
    telemetry_->CountRejected("executor");
    FinishJob(job, QueueFull(options_.queue_capacity));
  }
}

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_JOBS_H_
