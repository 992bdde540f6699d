// The cropshield.v1 gRPC front end. Each handler starts a call, hands the request to the inference
// core, and returns; the core finishes the call's reactor (on whichever thread knows the outcome),
// which translates absl::Status to grpc::Status and adds retry pushback to refusals.
//
// Thread-safety: handlers are called concurrently by gRPC; all members are thread-safe.
#ifndef CROPSHIELD_SERVER_GRPC_API_CROPSHIELD_SERVICE_H_
#define CROPSHIELD_SERVER_GRPC_API_CROPSHIELD_SERVICE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/expiry_watch.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "server/core/inference_core.h"

namespace cropshield::grpc_api {

namespace v1 = ::cropshield::v1;

struct ServiceOptions {
  // A finished call whose response the client has not taken this long after it was ready is
  // cancelled, releasing its memory (clients that never read).
  absl::Duration max_response_send_time = absl::Seconds(30);
};

class CallReactor;

class CropShieldService final : public cropshield::v1::CropShieldService::CallbackService {
 public:
  // `core` must outlive the service.
  static absl::StatusOr<std::unique_ptr<CropShieldService>> Create(ServiceOptions options,
                                                                   core::InferenceCore* core);

  using Context = grpc::CallbackServerContext;
  using Reactor = grpc::ServerUnaryReactor;
  Reactor* Predict(Context*, const v1::PredictRequest*, v1::PredictResponse*) override;
  Reactor* Explain(Context*, const v1::ExplainRequest*, v1::ExplainResponse*) override;
  Reactor* ClearCache(Context*, const v1::ClearCacheRequest*, v1::ClearCacheResponse*) override;
  Reactor* Stats(Context*, const v1::StatsRequest*, v1::StatsResponse*) override;
  Reactor* ReloadModel(Context*, const v1::ReloadModelRequest*, v1::ReloadModelResponse*) override;

  // Finished calls cancelled because the client did not take the response in time.
  int64_t SendTimeouts() const { return send_watch_->expired(); }

 private:
  CropShieldService(core::InferenceCore* core, std::unique_ptr<ExpiryWatch> send_watch)
      : core_(core), send_watch_(std::move(send_watch)) {}
  // A new call's reactor (it deletes itself when gRPC is done with the call), handed to
  // `to_core`, which passes the translated call to the core.
  template <typename ToCore>
  Reactor* Start(Context* context, ToCore to_core);

  core::InferenceCore* const core_;
  const std::unique_ptr<ExpiryWatch> send_watch_;  // cancels finished calls nobody reads
};

}  // namespace cropshield::grpc_api

#endif  // CROPSHIELD_SERVER_GRPC_API_CROPSHIELD_SERVICE_H_
