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

template <typename ToCore>
CropShieldService::Reactor* CropShieldService::Start(Context* context, ToCore to_core) {
  auto* reactor =
      new CallReactor(context, send_watch_.get(), &core_->telemetry(), core_->retry_pushback_ms());
  to_core(reactor);  // the core may finish the call before this returns
  return reactor;
}

CropShieldService::Reactor* CropShieldService::Predict(Context* context,
                                                       const v1::PredictRequest* request,
                                                       v1::PredictResponse* response) {
  return Start(context, [&](CallReactor* r) { core_->Predict(*request, response, r); });
}

CropShieldService::Reactor* CropShieldService::Explain(Context* context,
                                                       const v1::ExplainRequest* request,
                                                       v1::ExplainResponse* response) {
  return Start(context, [&](CallReactor* r) { core_->Explain(*request, response, r); });
}

CropShieldService::Reactor* CropShieldService::ClearCache(Context* context,
                                                          const v1::ClearCacheRequest* request,
                                                          v1::ClearCacheResponse* response) {
  return Start(context, [&](CallReactor* r) {
    core_->ClearCache(*request, CallerOf(*context), response, r);
  });
}

CropShieldService::Reactor* CropShieldService::Stats(Context* context,
                                                     const v1::StatsRequest* /*request*/,
                                                     v1::StatsResponse* response) {
  return Start(context, [&](CallReactor* r) { core_->Stats(CallerOf(*context), response, r); });
}

CropShieldService::Reactor* CropShieldService::ReloadModel(Context* context,
                                                           const v1::ReloadModelRequest* request,
                                                           v1::ReloadModelResponse* response) {
  return Start(context, [&](CallReactor* r) {
    core_->ReloadModel(*request, CallerOf(*context), response, r);
  });
}

}  // namespace cropshield::grpc_api
