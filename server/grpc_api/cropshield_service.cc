#include "server/grpc_api/cropshield_service.h"

#include <utility>

#include "server/grpc_api/call_reactor.h"

namespace cropshield::grpc_api {

absl::StatusOr<std::unique_ptr<CropShieldService>> CropShieldService::Create(
    ServiceOptions options, core::InferenceCore* core) {
  if (core == nullptr) return absl::InvalidArgumentError("the gRPC service needs a core");
  ExpiryWatch::Options watch_options;
  watch_options.timeout = options.max_response_send_time;
  auto send_watch = ExpiryWatch::Create(watch_options);
  if (!send_watch.ok()) return send_watch.status();
  return std::unique_ptr<CropShieldService>(new CropShieldService(core, *std::move(send_watch)));
}

CallReactor* CropShieldService::NewReactor(grpc::CallbackServerContext* context) {
  return new CallReactor(context, send_watch_.get(), &core_->telemetry(),
                         core_->retry_pushback_ms());
}

grpc::ServerUnaryReactor* CropShieldService::Predict(grpc::CallbackServerContext* context,
                                                     const cropshield::v1::PredictRequest* request,
                                                     cropshield::v1::PredictResponse* response) {
  CallReactor* reactor = NewReactor(context);
  core_->Predict(*request, response, reactor);
  return reactor;
}

grpc::ServerUnaryReactor* CropShieldService::Explain(grpc::CallbackServerContext* context,
                                                     const cropshield::v1::ExplainRequest* request,
                                                     cropshield::v1::ExplainResponse* response) {
  CallReactor* reactor = NewReactor(context);
  core_->Explain(*request, response, reactor);
  return reactor;
}

grpc::ServerUnaryReactor* CropShieldService::ClearCache(
    grpc::CallbackServerContext* context, const cropshield::v1::ClearCacheRequest* request,
    cropshield::v1::ClearCacheResponse* response) {
  CallReactor* reactor = NewReactor(context);
  core_->ClearCache(*request, CallerOf(*context), response, reactor);
  return reactor;
}

grpc::ServerUnaryReactor* CropShieldService::Stats(grpc::CallbackServerContext* context,
                                                   const cropshield::v1::StatsRequest* /*request*/,
                                                   cropshield::v1::StatsResponse* response) {
  CallReactor* reactor = NewReactor(context);
  core_->Stats(CallerOf(*context), response, reactor);
  return reactor;
}

grpc::ServerUnaryReactor* CropShieldService::ReloadModel(
    grpc::CallbackServerContext* context, const cropshield::v1::ReloadModelRequest* request,
    cropshield::v1::ReloadModelResponse* response) {
  CallReactor* reactor = NewReactor(context);
  core_->ReloadModel(*request, CallerOf(*context), response, reactor);
  return reactor;
}

}  // namespace cropshield::grpc_api
