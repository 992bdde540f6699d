#include "server/service/cropshield_service.h"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/stopwatch.h"
#include "server/metrics/state_collector.h"
#include "server/service/admin_auth.h"
#include "server/service/explain_pipeline.h"

namespace cropshield::service {
namespace {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// Work not yet started for a call that was cancelled or whose deadline passed is skipped.
absl::Status CheckCallAlive(grpc::CallbackServerContext* context) {
  if (context->IsCancelled()) return absl::CancelledError("call cancelled by the client");
  if (context->deadline() < std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError("deadline passed before processing started");
  }
  return absl::OkStatus();
}

absl::Status QueueFull(size_t capacity) {
  return absl::ResourceExhaustedError(
      absl::StrCat("server queue is full (", capacity, " requests waiting); retry with backoff"));
}

const char* RpcName(Rpc rpc) {
  switch (rpc) {
    case Rpc::kPredict:
      return "Predict";
    case Rpc::kExplain:
      return "Explain";
    case Rpc::kClearCache:
      return "ClearCache";
    case Rpc::kStats:
      return "Stats";
    case Rpc::kReloadModel:
      return "ReloadModel";
  }
  return "unknown";
}

metrics::StateCollector::CacheCounters ToCacheCounters(const cache::CacheStats& stats) {
  metrics::StateCollector::CacheCounters counters;
  counters.hits = stats.hits;
  counters.misses = stats.misses;
  counters.evictions = stats.evictions;
  counters.expirations = stats.expirations;
  counters.inserts = stats.inserts;
  counters.entries = stats.entries;
  counters.bytes = stats.bytes;
  counters.capacity_bytes = stats.capacity_bytes;
  return counters;
}

}  // namespace

// The reactor of every call. It lives until gRPC is done with the call (the response sent, or the
// call cancelled), holding the call's byte reservations until then; once the call is finished the
// send watch cancels it if the client does not take the response in time.
class CallReactor final : public grpc::ServerUnaryReactor {
 public:
  CallReactor(grpc::CallbackServerContext* context, ExpiryWatch* send_watch,
              metrics::ServerMetrics* metrics)
      : context_(context), send_watch_(send_watch), metrics_(metrics) {}

  void Hold(ByteBudget::Reservation reservation) {
    absl::MutexLock lock(&mu_);
    held_.push_back(std::move(reservation));
  }

  void FinishWatched(const grpc::Status& status) {
    send_watch_->Watch(this, [context = context_, metrics = metrics_] {
      metrics->CountRejected("send_timeout");
      context->TryCancel();
    });
    Finish(status);
  }

  void OnDone() override {
    send_watch_->Forget(this);
    delete this;  // releases the reservations
  }

 private:
  grpc::CallbackServerContext* const context_;
  ExpiryWatch* const send_watch_;
  metrics::ServerMetrics* const metrics_;
  absl::Mutex mu_;
  std::vector<ByteBudget::Reservation> held_ ABSL_GUARDED_BY(mu_);
};

// One accepted call: finishes its reactor exactly once and accounts for it.
struct CallState {
  Rpc rpc;
  grpc::CallbackServerContext* context;
  CallReactor* reactor;
  int64_t retry_pushback_ms;
  Stopwatch received;
  RequestStats* stats;
  std::atomic<int64_t>* in_flight;
  std::string request_id;
  metrics::ServerMetrics* metrics = nullptr;
  std::string model;  // the model's name once resolved (label of the stage metrics)

  void Finish(const absl::Status& status, const cropshield::v1::Timing* timing = nullptr) {
    const int64_t total_us = received.ElapsedMicros();
    stats->RecordCall(rpc, status.code(), total_us);
    if (timing != nullptr) stats->RecordTiming(*timing);
    if (metrics != nullptr) {
      metrics->RecordCall(RpcName(rpc), status.code(), static_cast<double>(total_us) * 1e-6);
      if (timing != nullptr) metrics->RecordTiming(model, *timing);
    }
    if (status.code() == absl::StatusCode::kInternal ||
        status.code() == absl::StatusCode::kUnknown ||
        status.code() == absl::StatusCode::kDataLoss) {
      CS_LOG_ERROR("call failed", request_id.empty() ? "" : " request_id=", request_id, ": ",
                   status.ToString());
    }
    if (status.code() == absl::StatusCode::kResourceExhausted) {
      // Read by gRPC's retry machinery and by our client library.
      context->AddTrailingMetadata("grpc-retry-pushback-ms", absl::StrCat(retry_pushback_ms));
    }
    in_flight->fetch_sub(1, std::memory_order_relaxed);
    reactor->FinishWatched(ToGrpcStatus(status));
  }
};

// A Predict call on its way through decode -> batch -> answer.
struct PredictJob {
  std::shared_ptr<CallState> call;
  grpc::CallbackServerContext* context = nullptr;
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
  std::shared_ptr<CallState> call;
  grpc::CallbackServerContext* context = nullptr;
  const cropshield::v1::ExplainRequest* request = nullptr;
  cropshield::v1::ExplainResponse* response = nullptr;
  std::shared_ptr<const engine::Model> model;
  ExplainPlan plan;
  OutputSize output;  // size of the photo-sized outputs
  cache::CacheKey key;
  bool leader = false;  // owns the cache flight of `key`
  PreparedImage prepared;
  engine::CamResult cam;
  int64_t queue_us = 0;
  Stopwatch batch_wait;
  int64_t inference_us = 0;
  int64_t explain_us = 0;
};

absl::StatusOr<std::unique_ptr<CropShieldServiceImpl>> CropShieldServiceImpl::Create(
    ServiceOptions options, const ModelRegistry* models,
    metrics::MetricsRegistry* metrics_registry) {
  if (models == nullptr) return absl::InvalidArgumentError("service needs a model registry");
  if (options.limits.max_image_bytes <= 0 || options.limits.max_image_pixels <= 0) {
    return absl::InvalidArgumentError("image limits must be positive");
  }
  std::unique_ptr<CropShieldServiceImpl> service(new CropShieldServiceImpl(options, models));
  if (metrics_registry == nullptr) {
    service->own_metrics_ = std::make_unique<metrics::MetricsRegistry>();
    metrics_registry = service->own_metrics_.get();
  }
  metrics::ServerMetrics::Options metrics_options;
  metrics_options.rpcs = {"Predict", "Explain", "ClearCache", "Stats", "ReloadModel"};
  metrics_options.queues = {"executor",      "explain_batcher",      "predict_batcher", "inflight",
                            "request_bytes", "explain_render_bytes", "send_timeout"};
  metrics_options.batchers = {"explain", "predict"};
  metrics_options.max_batch_size = std::max(options.explain_max_batch_size, options.max_batch_size);
  auto server_metrics =
      metrics::ServerMetrics::Create(metrics_options, &metrics_registry->registry());
  if (!server_metrics.ok()) return server_metrics.status();
  service->metrics_ = *std::move(server_metrics);

  cache::ShardedLruCache::Options cache_options;
  cache_options.num_shards = options.cache_shards;
  cache_options.ttl = options.cache_ttl;
  cache_options.capacity_bytes = std::max<int64_t>(0, options.explain_cache_bytes);
  auto explain_cache = cache::ShardedLruCache::Create(cache_options);
  if (!explain_cache.ok()) return explain_cache.status();
  service->explain_cache_ = *std::move(explain_cache);
  if (options.predict_cache_bytes > 0) {
    cache_options.capacity_bytes = options.predict_cache_bytes;
    auto predict_cache = cache::ShardedLruCache::Create(cache_options);
    if (!predict_cache.ok()) return predict_cache.status();
    service->predict_cache_ = *std::move(predict_cache);
  }

  ExpiryWatch::Options watch_options;
  watch_options.timeout = options.max_response_send_time;
  auto send_watch = ExpiryWatch::Create(watch_options);
  if (!send_watch.ok()) return send_watch.status();
  service->send_watch_ = *std::move(send_watch);

  BoundedExecutor::Options executor_options;
  executor_options.threads = options.workers;
  executor_options.queue_capacity = options.queue_capacity;
  auto executor = BoundedExecutor::Create(executor_options);
  if (!executor.ok()) return executor.status();
  service->executor_ = *std::move(executor);

  Batcher<std::shared_ptr<ExplainJob>>::Options batch_options;
  batch_options.max_batch_size = options.explain_max_batch_size;
  batch_options.queue_capacity = options.queue_capacity;
  auto batcher = Batcher<std::shared_ptr<ExplainJob>>::Create(
      batch_options, [raw = service.get()](std::vector<std::shared_ptr<ExplainJob>> jobs) {
        raw->RunExplainBatch(std::move(jobs));
      });
  if (!batcher.ok()) return batcher.status();
  service->explain_batcher_ = *std::move(batcher);

  Batcher<std::shared_ptr<PredictJob>>::Options predict_options;
  predict_options.max_batch_size = options.max_batch_size;
  predict_options.max_delay = absl::Microseconds(options.max_queue_delay_us);
  predict_options.queue_capacity = options.queue_capacity;
  predict_options.threads = std::max(1, options.predict_batch_threads);
  auto predict_batcher = Batcher<std::shared_ptr<PredictJob>>::Create(
      predict_options, [raw = service.get()](std::vector<std::shared_ptr<PredictJob>> jobs) {
        raw->RunPredictBatch(std::move(jobs));
      });
  if (!predict_batcher.ok()) return predict_batcher.status();
  service->predict_batcher_ = *std::move(predict_batcher);

  // Read at scrape time; unregistered first thing when the service is destroyed.
  auto state = std::make_shared<metrics::StateCollector>();
  CropShieldServiceImpl* raw = service.get();
  state->AddInFlight([raw] { return static_cast<double>(raw->InFlight()); });
  state->AddQueue("executor", static_cast<double>(options.queue_capacity),
                  [raw] { return static_cast<double>(raw->executor_->QueueDepth()); });
  state->AddQueue("explain_batcher", static_cast<double>(options.queue_capacity),
                  [raw] { return static_cast<double>(raw->explain_batcher_->QueueDepth()); });
  state->AddQueue("predict_batcher", static_cast<double>(options.queue_capacity),
                  [raw] { return static_cast<double>(raw->predict_batcher_->QueueDepth()); });
  state->AddCache("explain", [raw] { return ToCacheCounters(raw->explain_cache_->Stats()); });
  if (service->predict_cache_ != nullptr) {
    state->AddCache("predict", [raw] { return ToCacheCounters(raw->predict_cache_->Stats()); });
  }
  service->scrape_registration_ = metrics_registry->Add(std::move(state));
  return service;
}

CropShieldServiceImpl::CropShieldServiceImpl(ServiceOptions options, const ModelRegistry* models)
    : options_(std::move(options)),
      models_(models),
      request_bytes_(options_.max_inflight_request_bytes),
      render_bytes_(options_.explain_render_budget_bytes) {}

CropShieldServiceImpl::~CropShieldServiceImpl() { Shutdown(); }

void CropShieldServiceImpl::Shutdown() {
  // Batches hand rendering back to the executor, so the executor stops last.
  if (predict_batcher_) predict_batcher_->Shutdown();
  if (explain_batcher_) explain_batcher_->Shutdown();
  if (executor_) executor_->Shutdown();
}

namespace {

// What a queued call holds of its request: the encoded photo and the model input.
int64_t RequestBytes(absl::string_view image, const engine::Model& model) {
  return static_cast<int64_t>(image.size()) + model.input_elements() * int64_t{sizeof(float)};
}

// The decoded photo a job keeps until rendering: none for Predict; for an Explain overlay, the
// photo at the outputs' size (covered by the call's render reservation).
OutputSize PhotoToKeep(const PredictJob& /*job*/) { return {}; }
OutputSize PhotoToKeep(const ExplainJob& job) {
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
                     const std::shared_ptr<CallState>& call, const Request* request,
                     Response* response) {
  auto respond = [call, request, response](absl::StatusOr<cache::Value> value) {
    if (!value.ok()) return call->Finish(value.status());
    if (!response->ParseFromString(**value)) {
      return call->Finish(absl::InternalError("corrupt cached response"));
    }
    response->set_cached(true);
    response->set_request_id(request->request_id());
    response->mutable_timing()->set_total_us(call->received.ElapsedMicros());
    call->Finish(absl::OkStatus());
  };
  cache::ShardedLruCache::Lookup lookup = cache->GetOrJoin(key, respond);
  if (lookup.role == cache::ShardedLruCache::Role::kHit) {
    respond(lookup.value);
    return true;
  }
  return lookup.role == cache::ShardedLruCache::Role::kFollower;
}

}  // namespace

std::shared_ptr<CallState> CropShieldServiceImpl::StartCall(Rpc rpc,
                                                            grpc::CallbackServerContext* context,
                                                            std::string request_id) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  calls_started_.fetch_add(1, std::memory_order_relaxed);
  // Deletes itself in OnDone.
  auto* reactor = new CallReactor(context, send_watch_.get(), metrics_.get());
  return std::make_shared<CallState>(CallState{rpc, context, reactor, options_.retry_pushback_ms,
                                               Stopwatch(), &stats_, &in_flight_,
                                               std::move(request_id), metrics_.get()});
}

bool CropShieldServiceImpl::Admit(CallState& call, absl::string_view request_id) {
  if (absl::Status valid = CheckRequestId(request_id); !valid.ok()) {
    call.request_id.clear();  // not echoed anywhere
    call.Finish(valid);
    return false;
  }
  const int64_t limit = options_.max_inflight_calls;
  if (limit <= 0 || in_flight_.load(std::memory_order_relaxed) <= limit) return true;
  metrics_->CountRejected("inflight");
  call.Finish(absl::ResourceExhaustedError(
      absl::StrCat("server has ", limit, " calls in flight (--max_inflight_calls); retry after ",
                   options_.retry_pushback_ms, " ms")));
  return false;
}

bool CropShieldServiceImpl::Reserve(CallState& call, ByteBudget& budget, int64_t bytes,
                                    const char* what, const char* flag) {
  std::optional<ByteBudget::Reservation> reservation = budget.TryReserve(bytes);
  if (reservation.has_value()) {
    call.reactor->Hold(*std::move(reservation));
    return true;
  }
  metrics_->CountRejected(what);
  if (budget.capacity() > 0 && bytes > budget.capacity()) {
    call.Finish(absl::InvalidArgumentError(
        absl::StrCat("this call needs ", bytes, " bytes, over the server's whole budget of ",
                     budget.capacity(), " (", flag, ")")));
  } else {
    call.Finish(absl::ResourceExhaustedError(absl::StrCat(
        "server holds ", budget.used(), " of ", budget.capacity(), " bytes for ", what, " (", flag,
        "); this call needs ", bytes, "; retry after ", options_.retry_pushback_ms, " ms")));
  }
  return false;
}

absl::Status CropShieldServiceImpl::CheckAdmin(grpc::CallbackServerContext* context) const {
  std::string authorization;
  auto it = context->client_metadata().find("authorization");
  if (it != context->client_metadata().end()) {
    authorization.assign(it->second.data(), it->second.size());
  }
  // Identities of a client certificate the TLS layer verified (mTLS only).
  std::vector<std::string> identities;
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        identities.emplace_back(value.data(), value.size());
      }
    }
  }
  return AuthorizeAdmin(options_.admin, authorization, context->peer(), identities);
}

bool CropShieldServiceImpl::AuthorizeAdminCall(grpc::CallbackServerContext* context,
                                               CallState& call) {
  absl::Status allowed = CheckAdmin(context);
  if (allowed.ok()) return true;
  CS_LOG_WARNING(RpcName(call.rpc), " refused for peer ", context->peer(), ": ", allowed.message());
  call.Finish(allowed);
  return false;
}

absl::StatusOr<std::shared_ptr<const engine::Model>> CropShieldServiceImpl::ModelForCall(
    const cropshield::v1::ModelSpec& spec, CallState& call) {
  absl::StatusOr<std::shared_ptr<const engine::Model>> model = models_->Get(spec);
  if (!model.ok()) {
    call.Finish(model.status());
  } else {
    call.model = (*model)->name();
  }
  return model;
}

template <typename Job, typename Fail>
void CropShieldServiceImpl::PrepareThenBatch(const std::shared_ptr<Job>& job,
                                             Batcher<std::shared_ptr<Job>>* batcher,
                                             const char* batcher_name, Fail fail) {
  auto prepare = [this, job, batcher, batcher_name, fail]() {
    job->queue_us = job->call->received.ElapsedMicros();
    // A cache leader computes even for a cancelled call: followers wait for its result.
    if (!job->leader) {
      absl::Status alive = CheckCallAlive(job->context);
      if (!alive.ok()) return fail(job, alive);
    }
    absl::StatusOr<PreparedImage> prepared =
        PrepareImage(*job->model, job->request->image().data(), options_.limits, PhotoToKeep(*job));
    if (!prepared.ok()) return fail(job, prepared.status());
    job->prepared = *std::move(prepared);
    job->batch_wait = Stopwatch();
    if (!batcher->TrySubmit(job)) {
      metrics_->CountRejected(batcher_name);
      fail(job, QueueFull(options_.queue_capacity));
    }
  };
  if (!executor_->TrySubmit(std::move(prepare))) {
    metrics_->CountRejected("executor");
    fail(job, QueueFull(options_.queue_capacity));
  }
}

grpc::ServerUnaryReactor* CropShieldServiceImpl::Predict(
    grpc::CallbackServerContext* context, const cropshield::v1::PredictRequest* request,
    cropshield::v1::PredictResponse* response) {
  std::shared_ptr<CallState> call = StartCall(Rpc::kPredict, context, request->request_id());
  grpc::ServerUnaryReactor* reactor = call->reactor;
  if (!Admit(*call, request->request_id())) return reactor;
  absl::StatusOr<std::shared_ptr<const engine::Model>> model =
      ModelForCall(request->model(), *call);
  if (!model.ok()) return reactor;
  absl::StatusOr<int> top_k = ResolveTopK(request->top_k(), (*model)->num_classes());
  absl::Status valid =
      top_k.ok() ? CheckImageSize(request->image().data(), options_.limits) : top_k.status();
  if (!valid.ok()) {
    call->Finish(valid);
    return reactor;
  }
  if (!Reserve(*call, request_bytes_, RequestBytes(request->image().data(), **model),
               "request_bytes", "--max_inflight_request_bytes")) {
    return reactor;
  }

  // Optional response cache: the cached bytes hold everything but the per-call fields.
  cache::CacheKey key;
  bool leader = false;
  if (predict_cache_ != nullptr) {
    auto [high, low] = cache::KeyedHashBytes128(request->image().data());
    key = cache::CacheKey{(*model)->name(), (*model)->version(), high, low,
                          absl::StrCat("predict|k=", *top_k)};
    if (AnswerFromCache(predict_cache_.get(), key, call, request, response)) return reactor;
    leader = true;
  }

  auto job = std::make_shared<PredictJob>();
  job->call = call;
  job->context = context;
  job->request = request;
  job->response = response;
  job->model = *std::move(model);
  job->top_k = *top_k;
  job->key = std::move(key);
  job->leader = leader;
  PrepareThenBatch(job, predict_batcher_.get(), "predict_batcher",
                   [this](const std::shared_ptr<PredictJob>& j, const absl::Status& status) {
                     FinishPredictJob(j, status);
                   });
  return reactor;
}

void CropShieldServiceImpl::RunPredictBatch(std::vector<std::shared_ptr<PredictJob>> jobs) {
  // Calls cancelled or past their deadline while queued are dropped before inference.
  std::vector<std::shared_ptr<PredictJob>> alive_jobs;
  for (auto& job : jobs) {
    if (!job->leader) {
      absl::Status alive = CheckCallAlive(job->context);
      if (!alive.ok()) {
        job->queue_us += job->batch_wait.ElapsedMicros();
        FinishPredictJob(job, alive);
        continue;
      }
    }
    alive_jobs.push_back(std::move(job));
  }
  for (auto& [model, group] : GroupByModel(std::move(alive_jobs))) {
    const int batch = static_cast<int>(group.size());
    const std::vector<absl::Span<const float>> images = BatchInputs(group);
    std::vector<float> probabilities(static_cast<size_t>(batch) * model->num_classes());
    Stopwatch inference;
    absl::Status status = model->Classify(images, absl::MakeSpan(probabilities));
    const int64_t inference_us = inference.ElapsedMicros();
    metrics_->ObserveBatchSize("predict", batch);
    for (int i = 0; i < batch; ++i) {
      const std::shared_ptr<PredictJob>& job = group[i];
      if (!status.ok()) {
        FinishPredictJob(job, status);
        continue;
      }
      job->inference_us = inference_us;
      cropshield::v1::PredictResponse* response = job->response;
      auto probs =
          absl::MakeConstSpan(probabilities)
              .subspan(static_cast<size_t>(i) * model->num_classes(), model->num_classes());
      for (cropshield::v1::Prediction& p : TopK(probs, job->top_k, model->metadata())) {
        *response->add_predictions() = std::move(p);
      }
      response->mutable_model()->set_name(model->name());
      response->mutable_model()->set_version(model->version());
      response->set_image_width(job->prepared.decoded.full_width);
      response->set_image_height(job->prepared.decoded.full_height);
      FinishPredictJob(job, absl::OkStatus());
    }
  }
}

void CropShieldServiceImpl::FinishPredictJob(const std::shared_ptr<PredictJob>& job,
                                             const absl::Status& status) {
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
  timing->set_total_us(job->call->received.ElapsedMicros());
  job->call->Finish(absl::OkStatus(), timing);
}

grpc::ServerUnaryReactor* CropShieldServiceImpl::Explain(
    grpc::CallbackServerContext* context, const cropshield::v1::ExplainRequest* request,
    cropshield::v1::ExplainResponse* response) {
  std::shared_ptr<CallState> call = StartCall(Rpc::kExplain, context, request->request_id());
  grpc::ServerUnaryReactor* reactor = call->reactor;
  if (!Admit(*call, request->request_id())) return reactor;
  absl::StatusOr<std::shared_ptr<const engine::Model>> model =
      ModelForCall(request->model(), *call);
  if (!model.ok()) return reactor;
  absl::StatusOr<ExplainPlan> plan = PlanExplain(*request, **model);
  absl::Status valid =
      plan.ok() ? CheckImageSize(request->image().data(), options_.limits) : plan.status();
  // Photo-sized outputs are sized from the header, so that their memory is reserved (or refused)
  // before any work starts.
  absl::StatusOr<OutputSize> output =
      valid.ok() ? PlanExplainOutputs(*plan, request->image().data(), options_.limits) : valid;
  if (!output.ok()) {
    call->Finish(output.status());
    return reactor;
  }
  if (!Reserve(*call, request_bytes_, RequestBytes(request->image().data(), **model),
               "request_bytes", "--max_inflight_request_bytes") ||
      !Reserve(*call, render_bytes_, EstimateExplainBytes(*plan, *output), "explain_render_bytes",
               "--explain_render_budget_bytes")) {
    return reactor;
  }

  auto job = std::make_shared<ExplainJob>();
  job->call = call;
  job->request = request;
  job->response = response;
  job->model = *std::move(model);
  job->plan = *std::move(plan);
  job->output = *output;
  auto [high, low] = cache::KeyedHashBytes128(request->image().data());
  job->key = cache::CacheKey{job->model->name(), job->model->version(), high, low,
                             ExplainCacheVariant(job->plan)};
  if (!request->bypass_cache()) {
    if (AnswerFromCache(explain_cache_.get(), job->key, call, request, response)) return reactor;
    job->leader = true;
  }

  job->context = context;
  PrepareThenBatch(job, explain_batcher_.get(), "explain_batcher",
                   [this](const std::shared_ptr<ExplainJob>& j, const absl::Status& status) {
                     FinishExplainJob(j, status);
                   });
  return reactor;
}

void CropShieldServiceImpl::RunExplainBatch(std::vector<std::shared_ptr<ExplainJob>> jobs) {
  for (auto& [model, group] : GroupByModel(std::move(jobs))) {
    metrics_->ObserveBatchSize("explain", static_cast<int>(group.size()));
    const std::vector<absl::Span<const float>> images = BatchInputs(group);
    std::vector<engine::CamRequest> requests;
    for (const auto& job : group) requests.push_back({job->plan.target_class, job->plan.method});
    engine::ExplainTiming timing;
    absl::StatusOr<std::vector<engine::CamResult>> cams = model->Explain(images, requests, &timing);
    for (size_t i = 0; i < group.size(); ++i) {
      std::shared_ptr<ExplainJob> job = group[i];
      if (!cams.ok()) {
        FinishExplainJob(job, cams.status());
        continue;
      }
      job->cam = std::move((*cams)[i]);
      job->inference_us = timing.backbone_us;
      job->explain_us = timing.cam_us;
      auto render = [this, job]() {
        absl::Status rendered = RenderExplainResponse(*job->model, job->plan, job->prepared,
                                                      job->request->image().data(), options_.limits,
                                                      job->output, job->cam, job->response);
        if (!rendered.ok()) return FinishExplainJob(job, rendered);
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
        FinishExplainJob(job, std::move(value));
      };
      // Rendering and encoding run in parallel on the workers; inline if their queue is full.
      if (!executor_->TrySubmit(render)) render();
    }
  }
}

void CropShieldServiceImpl::FinishExplainJob(const std::shared_ptr<ExplainJob>& job,
                                             absl::StatusOr<cache::Value> result) {
  if (job->leader) {
    explain_cache_->Complete(job->key, result);
  } else if (result.ok()) {
    explain_cache_->Insert(job->key, *result);  // bypass_cache still refreshes the cache
  }
  if (!result.ok()) return job->call->Finish(result.status());
  job->response->set_cached(false);
  job->response->set_request_id(job->request->request_id());
  job->response->mutable_timing()->set_total_us(job->call->received.ElapsedMicros());
  job->call->Finish(absl::OkStatus(), &job->response->timing());
}

namespace {

void FillCacheStats(const cache::CacheStats& in, cropshield::v1::CacheStats* out) {
  out->set_entries(in.entries);
  out->set_bytes(in.bytes);
  out->set_capacity_bytes(in.capacity_bytes);
  out->set_hits(in.hits);
  out->set_misses(in.misses);
  out->set_evictions(in.evictions);
  out->set_hit_ratio(in.hit_ratio());
  for (const cache::ShardStats& shard : in.shards) {
    cropshield::v1::CacheStats* s = out->add_shards();
    s->set_entries(shard.entries);
    s->set_bytes(shard.bytes);
    s->set_capacity_bytes(
        in.shards.empty() ? 0 : in.capacity_bytes / static_cast<int64_t>(in.shards.size()));
    s->set_hits(shard.hits);
    s->set_misses(shard.misses);
    s->set_evictions(shard.evictions);
    const int64_t lookups = shard.hits + shard.misses;
    s->set_hit_ratio(lookups == 0 ? 0.0 : static_cast<double>(shard.hits) / lookups);
  }
}

}  // namespace

grpc::ServerUnaryReactor* CropShieldServiceImpl::ClearCache(
    grpc::CallbackServerContext* context, const cropshield::v1::ClearCacheRequest* request,
    cropshield::v1::ClearCacheResponse* response) {
  std::shared_ptr<CallState> call = StartCall(Rpc::kClearCache, context, "");
  grpc::ServerUnaryReactor* reactor = call->reactor;
  if (!AuthorizeAdminCall(context, *call)) return reactor;
  const bool both = !request->explain_cache() && !request->predict_cache();
  std::string model_name;
  int64_t version = 0;
  if (request->has_model()) {
    model_name = request->model().name();
    version = request->model().version();
    if (model_name.empty()) {
      auto current = models_->Get(cropshield::v1::ModelSpec());
      if (!current.ok()) {
        call->Finish(current.status());
        return reactor;
      }
      model_name = (*current)->name();
    }
  }
  auto clear = [&](cache::ShardedLruCache* cache) {
    return request->has_model() ? cache->ClearModel(model_name, version) : cache->Clear();
  };
  if (both || request->explain_cache()) {
    cache::ShardedLruCache::Freed freed = clear(explain_cache_.get());
    response->set_explain_entries_freed(freed.entries);
    response->set_explain_bytes_freed(freed.bytes);
  }
  if (predict_cache_ != nullptr && (both || request->predict_cache())) {
    cache::ShardedLruCache::Freed freed = clear(predict_cache_.get());
    response->set_predict_entries_freed(freed.entries);
    response->set_predict_bytes_freed(freed.bytes);
  }
  CS_LOG_INFO("ClearCache by ", context->peer(),
              request->has_model() ? absl::StrCat(" for ", model_name, " version ",
                                                  version == 0 ? "all" : absl::StrCat(version))
                                   : "",
              ": explain ", response->explain_entries_freed(), " entries / ",
              response->explain_bytes_freed(), " bytes, predict ",
              response->predict_entries_freed(), " entries / ", response->predict_bytes_freed(),
              " bytes freed");
  call->Finish(absl::OkStatus());
  return reactor;
}

grpc::ServerUnaryReactor* CropShieldServiceImpl::Stats(
    grpc::CallbackServerContext* context, const cropshield::v1::StatsRequest* /*request*/,
    cropshield::v1::StatsResponse* response) {
  std::shared_ptr<CallState> call = StartCall(Rpc::kStats, context, "");
  grpc::ServerUnaryReactor* reactor = call->reactor;
  stats_.Fill(response);
  for (const auto& model : models_->All()) {
    cropshield::v1::ModelInfo* info = response->add_models();
    info->set_name(model->name());
    info->set_version(model->version());
    info->set_device(model->device_name());
    info->set_precision(model->precision());
    for (const std::string& label : model->metadata().labels()) info->add_labels(label);
  }
  FillCacheStats(explain_cache_->Stats(), response->mutable_explain_cache());
  if (predict_cache_ != nullptr)
    FillCacheStats(predict_cache_->Stats(), response->mutable_predict_cache());
  // This call itself is in flight; report the others.
  response->set_in_flight(std::max<int64_t>(0, in_flight_.load(std::memory_order_relaxed) - 1));
  if (model_manager_ != nullptr) {
    cropshield::v1::ModelLoadStatus* load = response->mutable_last_model_load();
    *load = model_manager_->LastLoad();
    // Load errors name files of the repository: only admins see them.
    if (!load->error().empty() && !CheckAdmin(context).ok()) {
      load->set_error(RedactPaths(load->error()));
    }
  }
  call->Finish(absl::OkStatus());
  return reactor;
}

grpc::ServerUnaryReactor* CropShieldServiceImpl::ReloadModel(
    grpc::CallbackServerContext* context, const cropshield::v1::ReloadModelRequest* request,
    cropshield::v1::ReloadModelResponse* response) {
  std::shared_ptr<CallState> call = StartCall(Rpc::kReloadModel, context, "");
  grpc::ServerUnaryReactor* reactor = call->reactor;
  if (!AuthorizeAdminCall(context, *call)) return reactor;
  if (request->version() < 0) {
    call->Finish(absl::InvalidArgumentError(
        absl::StrCat("version must be >= 0 (0: the highest), got ", request->version())));
    return reactor;
  }
  if (model_manager_ == nullptr) {
    call->Finish(absl::UnimplementedError("this server has no model repository to reload from"));
    return reactor;
  }
  CS_LOG_INFO("ReloadModel by ", context->peer(), ": version ",
              request->version() == 0 ? "latest" : absl::StrCat(request->version()));
  // Loading and warm-up take seconds: the manager's thread finishes the call.
  model_manager_->ReloadAsync(request->version(),
                              [call, response](absl::StatusOr<ReloadOutcome> outcome) {
                                if (!outcome.ok()) return call->Finish(outcome.status());
                                *response->mutable_previous() = outcome->previous;
                                *response->mutable_current() = outcome->current;
                                response->set_reloaded(outcome->reloaded);
                                response->set_load_seconds(outcome->load_seconds);
                                call->Finish(absl::OkStatus());
                              });
  return reactor;
}

void CropShieldServiceImpl::DropModelCaches(const std::string& name, int64_t version) {
  cache::ShardedLruCache::Freed explain = explain_cache_->ClearModel(name, version);
  cache::ShardedLruCache::Freed predict;
  if (predict_cache_ != nullptr) predict = predict_cache_->ClearModel(name, version);
  CS_LOG_INFO("dropped cache entries of ", name, " version ", version, ": explain ",
              explain.entries, " entries / ", explain.bytes, " bytes, predict ", predict.entries,
              " entries / ", predict.bytes, " bytes");
}

}  // namespace cropshield::service
