#include "server/core/inference_core.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/core/jobs.h"
#include "server/metrics/state_collector.h"

namespace cropshield::core {
namespace {

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

absl::StatusOr<std::unique_ptr<InferenceCore>> InferenceCore::Create(
    CoreOptions options, metrics::MetricsRegistry* metrics) {
  if (metrics == nullptr) return absl::InvalidArgumentError("the core needs a metrics registry");
  if (options.limits.max_image_bytes <= 0 || options.limits.max_image_pixels <= 0) {
    return absl::InvalidArgumentError("image limits must be positive");
  }
  std::unique_ptr<InferenceCore> core(new InferenceCore(std::move(options)));
  Telemetry::Options telemetry_options;
  telemetry_options.queues = {"executor",    "explain_batcher", "predict_batcher",
                              "inflight",    "request_bytes",   "explain_render_bytes",
                              "send_timeout"};
  telemetry_options.batchers = {"explain", "predict"};
  telemetry_options.max_batch_size =
      std::max(core->options_.explain_max_batch_size, core->options_.max_batch_size);
  auto telemetry = Telemetry::Create(telemetry_options, metrics);
  if (!telemetry.ok()) return telemetry.status();
  core->telemetry_ = *std::move(telemetry);
  CS_RETURN_IF_ERROR(core->CreateCaches());
  CS_RETURN_IF_ERROR(core->CreateWorkers());
  CS_RETURN_IF_ERROR(core->CreateModelManager());
  core->RegisterScrapeState(metrics);
  return core;
}

InferenceCore::InferenceCore(CoreOptions options)
    : options_(std::move(options)),
      request_bytes_(options_.max_inflight_request_bytes),
      render_bytes_(options_.explain_render_budget_bytes) {}

InferenceCore::~InferenceCore() { Shutdown(); }

absl::Status InferenceCore::CreateCaches() {
  cache::ShardedLruCache::Options cache_options;
  cache_options.num_shards = options_.cache_shards;
  cache_options.ttl = options_.cache_ttl;
  cache_options.capacity_bytes = std::max<int64_t>(0, options_.explain_cache_bytes);
  auto explain_cache = cache::ShardedLruCache::Create(cache_options);
  if (!explain_cache.ok()) return explain_cache.status();
  explain_cache_ = *std::move(explain_cache);
  if (options_.predict_cache_bytes > 0) {
    cache_options.capacity_bytes = options_.predict_cache_bytes;
    auto predict_cache = cache::ShardedLruCache::Create(cache_options);
    if (!predict_cache.ok()) return predict_cache.status();
    predict_cache_ = *std::move(predict_cache);
  }
  return absl::OkStatus();
}

absl::Status InferenceCore::CreateWorkers() {
  BoundedExecutor::Options executor_options;
  executor_options.threads = options_.workers;
  executor_options.queue_capacity = options_.queue_capacity;
  auto executor = BoundedExecutor::Create(executor_options);
  if (!executor.ok()) return executor.status();
  executor_ = *std::move(executor);

  Batcher<std::shared_ptr<ExplainJob>>::Options explain_options;
  explain_options.max_batch_size = options_.explain_max_batch_size;
  explain_options.queue_capacity = options_.queue_capacity;
  auto explain_batcher = Batcher<std::shared_ptr<ExplainJob>>::Create(
      explain_options,
      [this](std::vector<std::shared_ptr<ExplainJob>> jobs) { RunExplainBatch(std::move(jobs)); });
  if (!explain_batcher.ok()) return explain_batcher.status();
  explain_batcher_ = *std::move(explain_batcher);

  Batcher<std::shared_ptr<PredictJob>>::Options predict_options;
  predict_options.max_batch_size = options_.max_batch_size;
  predict_options.max_delay = absl::Microseconds(options_.max_queue_delay_us);
  predict_options.queue_capacity = options_.queue_capacity;
  predict_options.threads = std::max(1, options_.predict_batch_threads);
  auto predict_batcher = Batcher<std::shared_ptr<PredictJob>>::Create(
      predict_options,
      [this](std::vector<std::shared_ptr<PredictJob>> jobs) { RunPredictBatch(std::move(jobs)); });
  if (!predict_batcher.ok()) return predict_batcher.status();
  predict_batcher_ = *std::move(predict_batcher);
  return absl::OkStatus();
}

absl::Status InferenceCore::CreateModelManager() {
  if (options_.models.model_path.empty()) return absl::OkStatus();
  ModelManagerOptions manager_options = options_.models;
  manager_options.on_retire = [this](const engine::Model& retired) {
    DropModelCaches(retired.name(), retired.version());
  };
  auto manager = ModelManager::Create(std::move(manager_options), &models_);
  if (!manager.ok()) return manager.status();
  model_manager_ = *std::move(manager);
  return absl::OkStatus();
}

// Read at scrape time; unregistered first thing when the core is destroyed.
void InferenceCore::RegisterScrapeState(metrics::MetricsRegistry* registry) {
  auto state = std::make_shared<metrics::StateCollector>();
  const auto capacity = static_cast<double>(options_.queue_capacity);
  state->AddInFlight([this] { return static_cast<double>(InFlight()); });
  state->AddQueue("executor", capacity,
                  [this] { return static_cast<double>(executor_->QueueDepth()); });
  state->AddQueue("explain_batcher", capacity,
                  [this] { return static_cast<double>(explain_batcher_->QueueDepth()); });
  state->AddQueue("predict_batcher", capacity,
                  [this] { return static_cast<double>(predict_batcher_->QueueDepth()); });
  state->AddCache("explain", [this] { return ToCacheCounters(explain_cache_->Stats()); });
  if (predict_cache_ != nullptr) {
    state->AddCache("predict", [this] { return ToCacheCounters(predict_cache_->Stats()); });
  }
  scrape_registration_ = registry->Add(std::move(state));
}

void InferenceCore::Shutdown() {
  if (model_manager_ != nullptr) model_manager_->Shutdown();
  // Batches hand rendering back to the executor, so the executor stops last.
  if (predict_batcher_) predict_batcher_->Shutdown();
  if (explain_batcher_) explain_batcher_->Shutdown();
  if (executor_) executor_->Shutdown();
}

std::shared_ptr<Call> InferenceCore::StartCall(Rpc rpc, Responder* responder,
                                               std::string request_id) {
  calls_started_.fetch_add(1, std::memory_order_relaxed);
  return std::make_shared<Call>(rpc, responder, std::move(request_id), telemetry_.get(),
                                &in_flight_);
}

bool InferenceCore::Admit(Call& call) {
  if (absl::Status valid = CheckRequestId(call.request_id()); !valid.ok()) {
    call.ForgetRequestId();
    call.Finish(valid);
    return false;
  }
  const int64_t limit = options_.max_inflight_calls;
  if (limit <= 0 || in_flight_.load(std::memory_order_relaxed) <= limit) return true;
  telemetry_->CountRejected("inflight");
  call.Finish(absl::ResourceExhaustedError(
      absl::StrCat("server has ", limit, " calls in flight (--max_inflight_calls); retry after ",
                   options_.retry_pushback_ms, " ms")));
  return false;
}

bool InferenceCore::Reserve(Call& call, ByteBudget& budget, int64_t bytes, const char* what,
                            const char* flag) {
  std::optional<ByteBudget::Reservation> reservation = budget.TryReserve(bytes);
  if (reservation.has_value()) {
    call.responder()->Hold(*std::move(reservation));
    return true;
  }
  telemetry_->CountRejected(what);
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

bool InferenceCore::AuthorizeAdminCall(const Caller& caller, Call& call) {
  absl::Status allowed =
      AuthorizeAdmin(options_.admin, caller.authorization, caller.peer, caller.verified_identities);
  if (allowed.ok()) return true;
  CS_LOG_WARNING(RpcName(call.rpc()), " refused for peer ", caller.peer, ": ", allowed.message());
  call.Finish(allowed);
  return false;
}

absl::StatusOr<std::shared_ptr<const engine::Model>> InferenceCore::ModelForCall(
    const cropshield::v1::ModelSpec& spec, Call& call) {
  absl::StatusOr<std::shared_ptr<const engine::Model>> model = models_.Get(spec);
  if (!model.ok()) {
    call.Finish(model.status());
  } else {
    call.set_model((*model)->name());
  }
  return model;
}

}  // namespace cropshield::core
