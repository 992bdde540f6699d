#include "server/oip/inference_service.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/grpc_api/call_reactor.h"
#include "server/oip/tensors.h"

#ifndef CROPSHIELD_VERSION
#define CROPSHIELD_VERSION "unknown"
#endif

namespace cropshield::oip {
namespace {

constexpr char kServerName[] = "cropshield-serve";
// The protocol extensions served (names as Triton reports them).
constexpr const char* kExtensions[] = {"model_configuration", "statistics"};

absl::StatusOr<cropshield::v1::ModelSpec> SpecFor(const std::string& name,
                                                  const std::string& version) {
  cropshield::v1::ModelSpec spec;
  spec.set_name(name);
  CS_ASSIGN_OR_RETURN(const int64_t parsed, ParseVersion(version));
  spec.set_version(parsed);
  return spec;
}

// The served model called `name` at `version` ("" = the served one); NOT_FOUND for others.
absl::StatusOr<std::shared_ptr<const engine::Model>> Resolve(const core::ModelRegistry& models,
                                                             const std::string& name,
                                                             const std::string& version) {
  CS_ASSIGN_OR_RETURN(const cropshield::v1::ModelSpec spec, SpecFor(name, version));
  return models.Get(spec);
}

// ModelStatistics' models: with neither name nor version, every model served.
absl::StatusOr<std::vector<std::shared_ptr<const engine::Model>>> ModelsFor(
    const core::ModelRegistry& models, const std::string& name, const std::string& version) {
  if (name.empty() && version.empty()) return models.All();
  CS_ASSIGN_OR_RETURN(std::shared_ptr<const engine::Model> model, Resolve(models, name, version));
  return std::vector<std::shared_ptr<const engine::Model>>{std::move(model)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<InferenceService>> InferenceService::Create(
    InferenceServiceOptions options, core::InferenceCore* core) {
  if (core == nullptr || !options.serving) {
    return absl::InvalidArgumentError("the inference service needs a core and a readiness check");
  }
  ExpiryWatch::Options watch_options;
  watch_options.timeout = options.max_response_send_time;
  auto send_watch = ExpiryWatch::Create(watch_options);
  if (!send_watch.ok()) return send_watch.status();
  return std::unique_ptr<InferenceService>(
      new InferenceService(std::move(options), core, *std::move(send_watch)));
}

template <typename Handle>
InferenceService::Reactor* InferenceService::Start(Context* context, Handle handle) {
  auto* reactor = new grpc_api::CallReactor(context, send_watch_.get(), &core_->telemetry(),
                                            core_->retry_pushback_ms());
  handle(reactor);  // the call may be finished before this returns
  return reactor;
}

InferenceService::Reactor* InferenceService::Answer(Context* context, const absl::Status& status) {
  return Start(context, [&](grpc_api::CallReactor* r) { r->Finish(status); });
}

InferenceService::Reactor* InferenceService::ServerLive(Context* context,
                                                        const inference::ServerLiveRequest*,
                                                        inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ServerReady(Context* context,
                                                         const inference::ServerReadyRequest*,
                                                         inference::ServerReadyResponse* response) {
  response->set_ready(options_.serving() && !core_->models().All().empty());
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ModelReady(Context* context,
                                                        const inference::ModelReadyRequest* request,
                                                        inference::ModelReadyResponse* response) {
  response->set_ready(options_.serving() &&
                      Resolve(core_->models(), request->name(), request->version()).ok());
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ServerMetadata(
    Context* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(CROPSHIELD_VERSION);
  for (const char* extension : kExtensions) response->add_extensions(extension);
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ModelMetadata(
    Context* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  auto model = Resolve(core_->models(), request->name(), request->version());
  if (model.ok()) DescribeModel(**model, response);
  return Answer(context, model.status());
}

InferenceService::Reactor* InferenceService::ModelConfig(
    Context* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  auto model = Resolve(core_->models(), request->name(), request->version());
  if (model.ok()) DescribeConfig(**model, options_.batching, response->mutable_config());
  return Answer(context, model.status());
}

InferenceService::Reactor* InferenceService::ModelStatistics(
    Context* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  auto models = ModelsFor(core_->models(), request->name(), request->version());
  if (!models.ok()) return Answer(context, models.status());
  for (const auto& model : *models) {
    auto* stats = response->add_model_stats();
    stats->set_name(model->name());
    stats->set_version(absl::StrCat(model->version()));
    counters_.Fill(stats);
  }
  return Answer(context, absl::OkStatus());
}

absl::Status InferenceService::StartInfer(const inference::ModelInferRequest& request,
                                          inference::ModelInferResponse* response,
                                          core::Responder* responder) {
  CS_ASSIGN_OR_RETURN(cropshield::v1::ModelSpec spec,
                      SpecFor(request.model_name(), request.model_version()));
  CS_ASSIGN_OR_RETURN(const std::shared_ptr<const engine::Model> model, core_->models().Get(spec));
  CS_ASSIGN_OR_RETURN(InferPlan plan,
                      PlanInfer(request, model->num_classes(), options_.max_photos_per_call));
  InferCall::Start(core_, request, std::move(spec), model->num_classes(), std::move(plan), response,
                   responder, &counters_);
  return absl::OkStatus();
}

InferenceService::Reactor* InferenceService::ModelInfer(Context* context,
                                                        const inference::ModelInferRequest* request,
                                                        inference::ModelInferResponse* response) {
  return Start(context, [&](grpc_api::CallReactor* r) {
    absl::Status started = StartInfer(*request, response, r);
    if (started.ok()) return;
    counters_.Record(false, 0, 0);
    r->Finish(started);
  });
}

}  // namespace cropshield::oip
