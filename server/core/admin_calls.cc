// The core's small calls: ClearCache, Stats and ReloadModel, and cache drops on model retirement.
#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/core/inference_core.h"

namespace cropshield::core {
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

void FillModels(const ModelRegistry& models, cropshield::v1::StatsResponse* response) {
  for (const auto& model : models.All()) {
    cropshield::v1::ModelInfo* info = response->add_models();
    info->set_name(model->name());
    info->set_version(model->version());
    info->set_device(model->device_name());
    info->set_precision(model->precision());
    for (const std::string& label : model->metadata().labels()) info->add_labels(label);
  }
}

std::string DescribeClear(const cropshield::v1::ClearCacheRequest& request,
                          const std::string& model_name, int64_t version,
                          const cropshield::v1::ClearCacheResponse& response) {
  return absl::StrCat(
      request.has_model() ? absl::StrCat(" for ", model_name, " version ",
                                         version == 0 ? "all" : absl::StrCat(version))
                          : "",
      ": explain ", response.explain_entries_freed(), " entries / ", response.explain_bytes_freed(),
      " bytes, predict ", response.predict_entries_freed(), " entries / ",
      response.predict_bytes_freed(), " bytes freed");
}

}  // namespace

absl::Status InferenceCore::CheckClearCacheScope(const cropshield::v1::ModelSpec& spec,
                                                 std::string* model_name) const {
  if (spec.version() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version must be >= 0 (0: every version), got ", spec.version()));
  }
  auto served = models_.Get(cropshield::v1::ModelSpec());
  if (!served.ok()) return served.status();  // UNAVAILABLE: nothing is loaded yet
  *model_name = spec.name().empty() ? (*served)->name() : spec.name();
  if (*model_name != (*served)->name()) {
    return absl::NotFoundError(absl::StrCat("model '", *model_name, "' is not served (serving '",
                                            (*served)->name(), "'): no cache entries to clear"));
  }
  if (spec.version() == 0 || spec.version() == (*served)->version()) return absl::OkStatus();
  // A version this server retired: its entries were dropped at the swap, but a call that
  // resolved it just before may have put one back, so clearing it stays meaningful.
  absl::MutexLock lock(&retired_mu_);
  if (retired_.count({*model_name, spec.version()}) > 0) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model '", *model_name, "' version ", spec.version(),
                                          " is not served (serving version ", (*served)->version(),
                                          ") nor was it retired here"));
}

void InferenceCore::ClearCache(const cropshield::v1::ClearCacheRequest& request,
                               const Caller& caller, cropshield::v1::ClearCacheResponse* response,
                               Responder* responder) {
  std::shared_ptr<Call> call = StartCall(Rpc::kClearCache, responder, "");
  if (!AuthorizeAdminCall(caller, *call)) return;
  std::string model_name;
  const int64_t version = request.model().version();
  if (request.has_model()) {
    if (absl::Status scope = CheckClearCacheScope(request.model(), &model_name); !scope.ok()) {
      return call->Finish(scope);
    }
  }
  auto clear = [&](cache::ShardedLruCache* cache) {
    return request.has_model() ? cache->ClearModel(model_name, version) : cache->Clear();
  };
  const bool both = !request.explain_cache() && !request.predict_cache();
  if (both || request.explain_cache()) {
    cache::ShardedLruCache::Freed freed = clear(explain_cache_.get());
    response->set_explain_entries_freed(freed.entries);
    response->set_explain_bytes_freed(freed.bytes);
  }
  if (predict_cache_ != nullptr && (both || request.predict_cache())) {
    cache::ShardedLruCache::Freed freed = clear(predict_cache_.get());
    response->set_predict_entries_freed(freed.entries);
    response->set_predict_bytes_freed(freed.bytes);
  }
  CS_LOG_INFO("ClearCache by ", caller.peer,
              DescribeClear(request, model_name, version, *response));
  call->Finish(absl::OkStatus());
}

void InferenceCore::Stats(const Caller& caller, cropshield::v1::StatsResponse* response,
                          Responder* responder) {
  std::shared_ptr<Call> call = StartCall(Rpc::kStats, responder, "");
  telemetry_->FillStats(response);
  FillModels(models_, response);
  FillCacheStats(explain_cache_->Stats(), response->mutable_explain_cache());
  if (predict_cache_ != nullptr) {
    FillCacheStats(predict_cache_->Stats(), response->mutable_predict_cache());
  }
  // This call itself is in flight; report the others.
  response->set_in_flight(std::max<int64_t>(0, InFlight() - 1));
  if (model_manager_ != nullptr) {
    cropshield::v1::ModelLoadStatus* load = response->mutable_last_model_load();
    *load = model_manager_->LastLoad();
    // Load errors name files of the repository: only admins see them.
    const bool admin = AuthorizeAdmin(options_.admin, caller.authorization, caller.peer,
                                      caller.verified_identities)
                           .ok();
    if (!load->error().empty() && !admin) load->set_error(RedactPaths(load->error()));
  }
  call->Finish(absl::OkStatus());
}

void InferenceCore::ReloadModel(const cropshield::v1::ReloadModelRequest& request,
                                const Caller& caller, cropshield::v1::ReloadModelResponse* response,
                                Responder* responder) {
  std::shared_ptr<Call> call = StartCall(Rpc::kReloadModel, responder, "");
  if (!AuthorizeAdminCall(caller, *call)) return;
  if (request.version() < 0) {
    return call->Finish(absl::InvalidArgumentError(
        absl::StrCat("version must be >= 0 (0: the highest), got ", request.version())));
  }
  if (model_manager_ == nullptr) {
    return call->Finish(
        absl::UnimplementedError("this server has no model repository to reload from"));
  }
  CS_LOG_INFO("ReloadModel by ", caller.peer, ": version ",
              request.version() == 0 ? "latest" : absl::StrCat(request.version()));
  // Loading and warm-up take seconds: the manager's thread finishes the call.
  model_manager_->ReloadAsync(request.version(),
                              [call, response](absl::StatusOr<ReloadOutcome> outcome) {
                                if (!outcome.ok()) return call->Finish(outcome.status());
                                *response->mutable_previous() = outcome->previous;
                                *response->mutable_current() = outcome->current;
                                response->set_reloaded(outcome->reloaded);
                                response->set_load_seconds(outcome->load_seconds);
                                call->Finish(absl::OkStatus());
                              });
}

void InferenceCore::DropModelCaches(const std::string& name, int64_t version) {
  {
    absl::MutexLock lock(&retired_mu_);
    retired_.insert({name, version});
  }
  cache::ShardedLruCache::Freed explain = explain_cache_->ClearModel(name, version);
  cache::ShardedLruCache::Freed predict;
  if (predict_cache_ != nullptr) predict = predict_cache_->ClearModel(name, version);
  CS_LOG_INFO("dropped cache entries of ", name, " version ", version, ": explain ",
              explain.entries, " entries / ", explain.bytes, " bytes, predict ", predict.entries,
              " entries / ", predict.bytes, " bytes");
}

}  // namespace cropshield::core
