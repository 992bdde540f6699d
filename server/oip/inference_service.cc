#include "server/oip/inference_service.h"

#include <utility>
#include <vector>

#include "server/grpc_api/call_reactor.h"

namespace cropshield::oip {

absl::StatusOr<std::unique_ptr<InferenceService>> InferenceService::Create(
    InferenceServiceOptions options, core::InferenceCore* core, InferenceProtocol* protocol) {
  if (core == nullptr || protocol == nullptr) {
    return absl::InvalidArgumentError("the inference service needs a core and a protocol");
  }
  ExpiryWatch::Options watch_options;
  watch_options.timeout = options.max_response_send_time;
  auto send_watch = ExpiryWatch::Create(watch_options);
  if (!send_watch.ok()) return send_watch.status();
  return std::unique_ptr<InferenceService>(
      new InferenceService(core, protocol, *std::move(send_watch)));
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
  response->set_ready(protocol_->ServerReady());
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ModelReady(Context* context,
                                                        const inference::ModelReadyRequest* request,
                                                        inference::ModelReadyResponse* response) {
  response->set_ready(protocol_->ModelReady(request->name(), request->version()));
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ServerMetadata(
    Context* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  protocol_->ServerMetadata(response);
  return Answer(context, absl::OkStatus());
}

InferenceService::Reactor* InferenceService::ModelMetadata(
    Context* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  return Answer(context, protocol_->ModelMetadata(request->name(), request->version(), response));
}

InferenceService::Reactor* InferenceService::ModelConfig(
    Context* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  return Answer(context, protocol_->ModelConfig(request->name(), request->version(),
                                                response->mutable_config()));
}

InferenceService::Reactor* InferenceService::ModelStatistics(
    Context* context, const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  return Answer(context, protocol_->ModelStatistics(request->name(), request->version(), response));
}

InferenceService::Reactor* InferenceService::ModelInfer(Context* context,
                                                        const inference::ModelInferRequest* request,
                                                        inference::ModelInferResponse* response) {
  return Start(context, [&](grpc_api::CallReactor* r) {
    absl::Status started = protocol_->StartInfer(*request, response, r);
    if (!started.ok()) r->Finish(started);
  });
}

}  // namespace cropshield::oip
