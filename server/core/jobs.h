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

// A Predict call on its way through decode -> batch -> answer.
struct PredictJob {
  std::shared_ptr<Call> call;
  const cropshield::v1::PredictRequest* request = nullptr;
  cropshield::v1::PredictResponse* response = nullptr;
  std::shared_ptr<const engine::Model> model;
  int top_k = 3;
  cache::CacheKey key;
  bool leader = false;  // owns the Predict cache flight of `key`
  PreparedImage prepared;
  int64_t queue_us = 0;
  Stopwatch batch_wait;
  int64_t inference_us = 0;
};

// An Explain call on its way through decode -> batch -> render.
struct ExplainJob {
  std::shared_ptr<Call> call;
  const cropshield::v1::ExplainRequest* request = nullptr;
  cropshield::v1::ExplainResponse* response = nullptr;
  std::shared_ptr<const engine::Model> model;
  ExplainPlan plan;
  OutputSize output;  // size of the photo-sized outputs (planned from the header)
  cache::CacheKey key;
  bool leader = false;  // owns the cache flight of `key` (false with bypass_cache)
  PreparedImage prepared;
  engine::CamResult cam;
  int64_t queue_us = 0;
  Stopwatch batch_wait;
  int64_t inference_us = 0;
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

// Answers a call from `cache` when it can: true when the call is answered now (hit) or will be when
// an identical computation in flight completes (follower); false when the caller leads the flight
// and must compute, then Complete the key.
template <typename Request, typename Response>
bool AnswerFromCache(cache::ShardedLruCache* cache, const cache::CacheKey& key,
                     const std::shared_ptr<Call>& call, const Request* request,
                     Response* response) {
  auto respond = [call, request, response](absl::StatusOr<cache::Value> value) {
    if (!value.ok()) return call->Finish(value.status());
    if (!response->ParseFromString(**value)) {
      return call->Finish(absl::InternalError("corrupt cached response"));
    }
    response->set_cached(true);
    response->set_request_id(request->request_id());
    response->mutable_timing()->set_total_us(call->ElapsedMicros());
    call->Finish(absl::OkStatus());
  };
  cache::ShardedLruCache::Lookup lookup = cache->GetOrJoin(key, respond);
  if (lookup.role == cache::ShardedLruCache::Role::kHit) {
    respond(lookup.value);
    return true;
  }
  return lookup.role == cache::ShardedLruCache::Role::kFollower;
}

template <typename Job, typename Fail>
void InferenceCore::PrepareThenBatch(const std::shared_ptr<Job>& job,
                                     Batcher<std::shared_ptr<Job>>* batcher,
                                     const char* batcher_name, Fail fail) {
  auto prepare = [this, job, batcher, batcher_name, fail]() {
    job->queue_us = job->call->ElapsedMicros();
    // A cache leader computes even for a cancelled call: followers wait for its result.
    if (!job->leader) {
      absl::Status alive = job->call->CheckAlive();
      if (!alive.ok()) return fail(job, alive);
    }
    absl::StatusOr<PreparedImage> prepared =
        PrepareImage(*job->model, job->request->image().data(), options_.limits, PhotoToKeep(*job));
    if (!prepared.ok()) return fail(job, prepared.status());
    job->prepared = *std::move(prepared);
    job->batch_wait = Stopwatch();
    if (!batcher->TrySubmit(job)) {
      telemetry_->CountRejected(batcher_name);
      fail(job, QueueFull(options_.queue_capacity));
    }
  };
  if (!executor_->TrySubmit(std::move(prepare))) {
    telemetry_->CountRejected("executor");
    fail(job, QueueFull(options_.queue_capacity));
  }
}

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_JOBS_H_
