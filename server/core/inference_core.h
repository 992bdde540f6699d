// The inference core: everything between a front end's translated request and its answer, free of
// any protocol. Admission (in-flight calls, byte budgets), validation, the caches with
// single-flight, the decode/preprocess pool, the Predict and Explain batchers, batch execution,
// response assembly, telemetry, and the models (registry and manager).
//
// Requests and results are the cropshield.v1 messages (protobuf data; no gRPC here). A front end
// calls Predict/Explain/... with the request, the response to fill and its Responder; the core
// answers through Responder::Finish exactly once (see call.h for lifetimes). Entry points never
// block: decoding, inference and rendering run on the core's worker and batch threads.
//
// Thread-safety: every public method may be called concurrently. Shutdown order: stop the front
// ends first (they wait for calls in flight, whose work is still running here), then Shutdown().
#ifndef CROPSHIELD_SERVER_CORE_INFERENCE_CORE_H_
#define CROPSHIELD_SERVER_CORE_INFERENCE_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/batcher.h"
#include "common/bounded_executor.h"
#include "common/byte_budget.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/cache/sharded_lru_cache.h"
#include "server/core/admin_auth.h"
#include "server/core/call.h"
#include "server/core/model_manager.h"
#include "server/core/model_registry.h"
#include "server/core/request_validation.h"
#include "server/core/telemetry.h"
#include "server/metrics/metrics_registry.h"

namespace cropshield::core {

struct CoreOptions {
  ImageLimits limits;
  // Threads that decode, preprocess and render.
  int workers = 1;
  // Requests that may wait for a worker or a batch; beyond it calls get RESOURCE_EXHAUSTED.
  size_t queue_capacity = 256;
  // Predict requests classified together: a batch closes at max_batch_size or when its oldest
  // request has waited max_queue_delay_us (0: take what is queued, never wait).
  int max_batch_size = 8;
  int64_t max_queue_delay_us = 0;
  // Threads that each run one Predict batch at a time. On a GPU a second one assembles the next
  // batch and answers the last one while a forward runs.
  int predict_batch_threads = 1;
  // Explain requests computed together in one backbone + head pass.
  int explain_max_batch_size = 8;
  // Explanation cache budget and sharding; 0 bytes stores nothing (single-flight still applies).
  int64_t explain_cache_bytes = 128 << 20;
  int cache_shards = 16;
  absl::Duration cache_ttl = absl::ZeroDuration();
  // Predict response cache; 0 disables it (the default).
  int64_t predict_cache_bytes = 0;
  // Who may call admin RPCs (ClearCache, ReloadModel): a bearer token, mTLS identities and/or
  // loopback peers; with none, nobody.
  AdminPolicy admin;
  // Predict and Explain calls accepted at once; beyond it calls get RESOURCE_EXHAUSTED at once.
  // 0: no limit besides the queues.
  int64_t max_inflight_calls = 0;
  // Suggested retry delay of every RESOURCE_EXHAUSTED refusal (front ends send it as pushback).
  int64_t retry_pushback_ms = 100;
  // Encoded images (plus model inputs) of Predict/Explain calls held at once; beyond it calls get
  // RESOURCE_EXHAUSTED at once. <= 0: unlimited.
  int64_t max_inflight_request_bytes = 256 << 20;
  // Explain render buffers and responses held at once (EstimateExplainBytes per call, from accept
  // until the front end is done sending); beyond it Explain calls get RESOURCE_EXHAUSTED.
  // <= 0: unlimited.
  int64_t explain_render_budget_bytes = 512 << 20;
  // Model loading and hot reload; an empty model_path leaves installing models to the caller
  // (models().SetDefault) and makes ReloadModel answer UNIMPLEMENTED.
  ModelManagerOptions models;
};

struct PredictJob;
struct ExplainJob;

class InferenceCore {
 public:
  // Records metrics in `metrics`, which must outlive the core.
  static absl::StatusOr<std::unique_ptr<InferenceCore>> Create(CoreOptions options,
                                                               metrics::MetricsRegistry* metrics);
  ~InferenceCore();  // Shutdown()

  // Classifies the photo of `request` into `response`.
  void Predict(const cropshield::v1::PredictRequest& request,
               cropshield::v1::PredictResponse* response, Responder* responder);
  // Computes (or answers from the cache) the explanation `request` asks for.
  void Explain(const cropshield::v1::ExplainRequest& request,
               cropshield::v1::ExplainResponse* response, Responder* responder);
  // Admin: empties the caches (or one model's, one version's, one cache's entries). A model that
  // is not served, or a version neither served nor retired by this server (hot reload), answers
  // NOT_FOUND; with no model loaded yet, a scoped clear answers UNAVAILABLE.
  void ClearCache(const cropshield::v1::ClearCacheRequest& request, const Caller& caller,
                  cropshield::v1::ClearCacheResponse* response, Responder* responder);
  // Calls, latencies, caches, models and the last model load (paths redacted unless admin).
  void Stats(const Caller& caller, cropshield::v1::StatsResponse* response, Responder* responder);
  // Admin: loads a version on the model manager's thread, which finishes the call.
  void ReloadModel(const cropshield::v1::ReloadModelRequest& request, const Caller& caller,
                   cropshield::v1::ReloadModelResponse* response, Responder* responder);

  ModelRegistry& models() { return models_; }
  // Null when CoreOptions::models.model_path was empty.
  ModelManager* model_manager() { return model_manager_.get(); }
  Telemetry& telemetry() { return *telemetry_; }
  int64_t retry_pushback_ms() const { return options_.retry_pushback_ms; }

  // Calls accepted and not yet finished.
  int64_t InFlight() const { return in_flight_.load(std::memory_order_relaxed); }
  // Calls accepted since start.
  int64_t CallsStarted() const { return calls_started_.load(std::memory_order_relaxed); }

  // Stops model loads, runs the queued work to completion and stops the workers.
  void Shutdown();

 private:
  explicit InferenceCore(CoreOptions options);
  absl::Status CreateCaches();
  absl::Status CreateWorkers();
  absl::Status CreateModelManager();
  void RegisterScrapeState(metrics::MetricsRegistry* registry);

  std::shared_ptr<Call> StartCall(Rpc rpc, Responder* responder, std::string request_id);
  // Predict and Explain enter alike: start and admit the call, resolve its model, Plan the job
  // (validation, reservations, cache; false when the call is already answered or will be by a
  // cache flight), then Queue it for a worker and a batcher.
  template <typename JobT>
  void AcceptImageCall(Rpc rpc, const typename JobT::RequestType& request,
                       typename JobT::ResponseType* response, Responder* responder);
  bool Plan(PredictJob& job);
  bool Plan(ExplainJob& job);
  void Queue(const std::shared_ptr<PredictJob>& job);
  void Queue(const std::shared_ptr<ExplainJob>& job);
  // The encoded photo and the model input, from --max_inflight_request_bytes (see Reserve).
  template <typename JobT>
  bool ReserveRequestBytes(JobT& job);
  // False (and the call finished) for a malformed request_id (INVALID_ARGUMENT) or when
  // max_inflight_calls are running (RESOURCE_EXHAUSTED).
  bool Admit(Call& call);
  // Reserves `bytes` of `budget` for the call until its front end is done with it; false (and
  // the call finished with RESOURCE_EXHAUSTED naming `flag`) when they do not fit.
  bool Reserve(Call& call, ByteBudget& budget, int64_t bytes, const char* what, const char* flag);
  // Admin calls: true, or the call is finished with PERMISSION_DENIED.
  bool AuthorizeAdminCall(const Caller& caller, Call& call);
  // The model `spec` asks for; on error the call is finished with it.
  absl::StatusOr<std::shared_ptr<const engine::Model>> ModelForCall(
      const cropshield::v1::ModelSpec& spec, Call& call);
  // Decodes and preprocesses `job` on a worker, then queues it on `batcher`; FinishJob finishes
  // it on any error or full queue.
  template <typename JobT>
  void PrepareThenBatch(const std::shared_ptr<JobT>& job, Batcher<std::shared_ptr<JobT>>* batcher,
                        const char* batcher_name);

  void RunPredictBatch(std::vector<std::shared_ptr<PredictJob>> jobs);
  void AnswerPredictJob(PredictJob& job, const engine::Model& model,
                        absl::Span<const float> probabilities);
  void FinishJob(const std::shared_ptr<PredictJob>& job, const absl::Status& status);
  void RunExplainBatch(std::vector<std::shared_ptr<ExplainJob>> jobs);
  void RenderExplainJob(const std::shared_ptr<ExplainJob>& job);
  void FinishJob(const std::shared_ptr<ExplainJob>& job, absl::StatusOr<cache::Value> result);
  // Drops the cache entries of a model version that no longer serves, and remembers it as retired.
  void DropModelCaches(const std::string& name, int64_t version);
  // OK when ClearCache may clear `spec`'s entries (see ClearCache); sets the model's name.
  absl::Status CheckClearCacheScope(const cropshield::v1::ModelSpec& spec,
                                    std::string* model_name) const;

  const CoreOptions options_;
  ModelRegistry models_;
  std::unique_ptr<Telemetry> telemetry_;
  std::unique_ptr<cache::ShardedLruCache> explain_cache_;
  std::unique_ptr<cache::ShardedLruCache> predict_cache_;  // null when disabled
  std::unique_ptr<BoundedExecutor> executor_;
  ByteBudget request_bytes_;
  ByteBudget render_bytes_;
  std::unique_ptr<Batcher<std::shared_ptr<ExplainJob>>> explain_batcher_;
  std::unique_ptr<Batcher<std::shared_ptr<PredictJob>>> predict_batcher_;
  std::unique_ptr<ModelManager> model_manager_;  // after the caches: drops their entries
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> calls_started_{0};
  // Versions retired by hot reloads (ClearCache may still clear them); one entry per reload.
  mutable absl::Mutex retired_mu_;
  std::set<std::pair<std::string, int64_t>> retired_ ABSL_GUARDED_BY(retired_mu_);
  // Last: unregistered (after any scrape in progress) before the state it reads is destroyed.
  metrics::MetricsRegistry::Registration scrape_registration_;
};

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_INFERENCE_CORE_H_
