// The gRPC callback service. Handlers only validate, consult the caches and enqueue: decoding,
// preprocessing, inference, Grad-CAM and encoding run on the worker executor and the explain
// batcher, whose tasks finish the reactor.
//
// Thread-safety: handlers are called concurrently by gRPC; all members are thread-safe.
// Shutdown order: stop the grpc::Server first (it waits for in-flight calls, whose tasks are
// still running on the executor and batcher), then call Shutdown().
#ifndef CROPSHIELD_SERVER_SERVICE_CROPSHIELD_SERVICE_H_
#define CROPSHIELD_SERVER_SERVICE_CROPSHIELD_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/batcher.h"
#include "common/bounded_executor.h"
#include "common/byte_budget.h"
#include "common/expiry_watch.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "server/cache/sharded_lru_cache.h"
#include "server/metrics/metrics_registry.h"
#include "server/metrics/server_metrics.h"
#include "server/service/admin_auth.h"
#include "server/service/model_manager.h"
#include "server/service/model_registry.h"
#include "server/service/predict_pipeline.h"
#include "server/service/request_stats.h"

namespace cropshield::service {

struct ServiceOptions {
  ImageLimits limits;
  // Threads that decode, preprocess, classify and render.
  int workers = 1;
  // Requests that may wait for a worker; beyond it calls get RESOURCE_EXHAUSTED.
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
  // Who may call admin RPCs (ClearCache, ReloadModel): a bearer token and/or mTLS identities;
  // with neither, loopback peers only.
  AdminPolicy admin;
  // Predict and Explain calls accepted at once; beyond it calls get RESOURCE_EXHAUSTED at once.
  // 0: no limit besides the queues.
  int64_t max_inflight_calls = 0;
  // Sent as `grpc-retry-pushback-ms` trailing metadata with every RESOURCE_EXHAUSTED refusal.
  int64_t retry_pushback_ms = 100;
  // Encoded images (plus model inputs) of Predict/Explain calls held at once; beyond it calls get
  // RESOURCE_EXHAUSTED at once. <= 0: unlimited.
  int64_t max_inflight_request_bytes = 256 << 20;
  // Explain render buffers and responses held at once (EstimateExplainBytes per call, from accept
  // until gRPC is done sending); beyond it Explain calls get RESOURCE_EXHAUSTED. <= 0: unlimited.
  int64_t explain_render_budget_bytes = 512 << 20;
  // A finished call whose response the client has not taken this long after it was ready is
  // cancelled, releasing its memory (clients that never read).
  absl::Duration max_response_send_time = absl::Seconds(30);
};

class CallReactor;
struct CallState;
struct ExplainJob;
struct PredictJob;

class CropShieldServiceImpl final : public cropshield::v1::CropShieldService::CallbackService {
 public:
  // `models` must outlive the service. The service records its metrics in `metrics` (which must
  // outlive it; without one it keeps a private registry nobody scrapes).
  static absl::StatusOr<std::unique_ptr<CropShieldServiceImpl>> Create(
      ServiceOptions options, const ModelRegistry* models,
      metrics::MetricsRegistry* metrics = nullptr);
  ~CropShieldServiceImpl() override;

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const cropshield::v1::PredictRequest* request,
                                    cropshield::v1::PredictResponse* response) override;
  grpc::ServerUnaryReactor* Explain(grpc::CallbackServerContext* context,
                                    const cropshield::v1::ExplainRequest* request,
                                    cropshield::v1::ExplainResponse* response) override;
  grpc::ServerUnaryReactor* ClearCache(grpc::CallbackServerContext* context,
                                       const cropshield::v1::ClearCacheRequest* request,
                                       cropshield::v1::ClearCacheResponse* response) override;
  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* context,
                                  const cropshield::v1::StatsRequest* request,
                                  cropshield::v1::StatsResponse* response) override;
  grpc::ServerUnaryReactor* ReloadModel(grpc::CallbackServerContext* context,
                                        const cropshield::v1::ReloadModelRequest* request,
                                        cropshield::v1::ReloadModelResponse* response) override;

  // Where ReloadModel sends its work; set once before the server starts (without one, ReloadModel
  // answers UNIMPLEMENTED). Must outlive the service's calls.
  void set_model_manager(ModelManager* manager) { model_manager_ = manager; }

  // Drops the cache entries of a model version that no longer serves.
  void DropModelCaches(const std::string& name, int64_t version);

  // Calls accepted and not yet finished.
  int64_t InFlight() const { return in_flight_.load(std::memory_order_relaxed); }
  // Calls accepted since start.
  int64_t CallsStarted() const { return calls_started_.load(std::memory_order_relaxed); }
  // Finished calls cancelled because the client did not take the response in time.
  int64_t SendTimeouts() const { return send_watch_->expired(); }

  // Runs the queued work to completion and stops the workers.
  void Shutdown();

 private:
  CropShieldServiceImpl(ServiceOptions options, const ModelRegistry* models);

  // Counts the call in flight; the returned state finishes it exactly once.
  std::shared_ptr<CallState> StartCall(Rpc rpc, grpc::CallbackServerContext* context,
                                       std::string request_id);
  // False (and the call finished) for a malformed request_id (INVALID_ARGUMENT) or when
  // max_inflight_calls are running (RESOURCE_EXHAUSTED).
  bool Admit(CallState& call, absl::string_view request_id);
  // Reserves `bytes` of `budget` for the call until gRPC is done with it; false (and the call
  // finished with RESOURCE_EXHAUSTED naming `flag`) when they do not fit.
  bool Reserve(CallState& call, ByteBudget& budget, int64_t bytes, const char* what,
               const char* flag);
  // OK when the caller may call admin RPCs (token, client certificate or trusted loopback).
  absl::Status CheckAdmin(grpc::CallbackServerContext* context) const;
  // Admin RPCs: OK, or the call is finished with PERMISSION_DENIED.
  bool AuthorizeAdminCall(grpc::CallbackServerContext* context, CallState& call);
  // The model `spec` asks for; on error the call is finished with it.
  absl::StatusOr<std::shared_ptr<const engine::Model>> ModelForCall(
      const cropshield::v1::ModelSpec& spec, CallState& call);
  // Decodes and preprocesses `job` on a worker, then queues it on `batcher`; `fail(job, status)`
  // finishes it on any error or full queue.
  template <typename Job, typename Fail>
  void PrepareThenBatch(const std::shared_ptr<Job>& job, Batcher<std::shared_ptr<Job>>* batcher,
                        const char* batcher_name, Fail fail);
  void RunPredictBatch(std::vector<std::shared_ptr<PredictJob>> jobs);
  void FinishPredictJob(const std::shared_ptr<PredictJob>& job, const absl::Status& status);
  void RunExplainBatch(std::vector<std::shared_ptr<ExplainJob>> jobs);
  void FinishExplainJob(const std::shared_ptr<ExplainJob>& job,
                        absl::StatusOr<cache::Value> result);

  const ServiceOptions options_;
  const ModelRegistry* const models_;
  ModelManager* model_manager_ = nullptr;
  std::unique_ptr<cache::ShardedLruCache> explain_cache_;
  std::unique_ptr<cache::ShardedLruCache> predict_cache_;  // null when disabled
  std::unique_ptr<BoundedExecutor> executor_;
  ByteBudget request_bytes_;
  ByteBudget render_bytes_;
  std::unique_ptr<ExpiryWatch> send_watch_;  // cancels finished calls whose client does not read
  std::unique_ptr<Batcher<std::shared_ptr<ExplainJob>>> explain_batcher_;
  std::unique_ptr<Batcher<std::shared_ptr<PredictJob>>> predict_batcher_;
  RequestStats stats_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> calls_started_{0};
  std::unique_ptr<metrics::MetricsRegistry> own_metrics_;  // when Create was given none
  std::unique_ptr<metrics::ServerMetrics> metrics_;
  // Last: unregistered (after any scrape in progress) before the state it reads is destroyed.
  metrics::MetricsRegistry::Registration scrape_registration_;
};

}  // namespace cropshield::service

#endif  // CROPSHIELD_SERVER_SERVICE_CROPSHIELD_SERVICE_H_
