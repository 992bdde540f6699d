// The Open Inference Protocol (KServe v2) gRPC front end, inference.GRPCInferenceService, plus
// Triton's ModelConfig and ModelStatistics: each RPC hands its messages to InferenceProtocol
// (protocol.h, shared with the REST front end), which runs them on the inference core.
// Every call's reactor is grpc_api's CallReactor (deadline, cancellation, byte reservations held
// until gRPC is done, absl -> grpc status, retry pushback, send watch).
//
// Thread-safety: handlers are called concurrently by gRPC; all members are thread-safe.
#ifndef CROPSHIELD_SERVER_OIP_INFERENCE_SERVICE_H_
#define CROPSHIELD_SERVER_OIP_INFERENCE_SERVICE_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/expiry_watch.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "server/core/inference_core.h"
#include "server/oip/protocol.h"

namespace cropshield::oip {

struct InferenceServiceOptions {
  // As grpc_api::ServiceOptions: finished calls whose response is not taken are cancelled.
  absl::Duration max_response_send_time = absl::Seconds(30);
};

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `core` and `protocol` must outlive the service.
  static absl::StatusOr<std::unique_ptr<InferenceService>> Create(InferenceServiceOptions options,
                                                                  core::InferenceCore* core,
                                                                  InferenceProtocol* protocol);

  using Context = grpc::CallbackServerContext;
  using Reactor = grpc::ServerUnaryReactor;
  Reactor* ServerLive(Context*, const inference::ServerLiveRequest*,
                      inference::ServerLiveResponse*) override;
  Reactor* ServerReady(Context*, const inference::ServerReadyRequest*,
                       inference::ServerReadyResponse*) override;
  Reactor* ModelReady(Context*, const inference::ModelReadyRequest*,
                      inference::ModelReadyResponse*) override;
  Reactor* ServerMetadata(Context*, const inference::ServerMetadataRequest*,
                          inference::ServerMetadataResponse*) override;
  Reactor* ModelMetadata(Context*, const inference::ModelMetadataRequest*,
                         inference::ModelMetadataResponse*) override;
  Reactor* ModelInfer(Context*, const inference::ModelInferRequest*,
                      inference::ModelInferResponse*) override;
  Reactor* ModelConfig(Context*, const inference::ModelConfigRequest*,
                       inference::ModelConfigResponse*) override;
  Reactor* ModelStatistics(Context*, const inference::ModelStatisticsRequest*,
                           inference::ModelStatisticsResponse*) override;

 private:
  InferenceService(core::InferenceCore* core, InferenceProtocol* protocol,
                   std::unique_ptr<ExpiryWatch> send_watch)
      : core_(core), protocol_(protocol), send_watch_(std::move(send_watch)) {}
  // A new call's reactor, handed to `handle`, which finishes it (or passes it to the core).
  template <typename Handle>
  Reactor* Start(Context* context, Handle handle);
  // A call answered at once with `status` (the response already filled when OK).
  Reactor* Answer(Context* context, const absl::Status& status);

  core::InferenceCore* const core_;
  InferenceProtocol* const protocol_;
  const std::unique_ptr<ExpiryWatch> send_watch_;  // cancels finished calls nobody reads
};

}  // namespace cropshield::oip

#endif  // CROPSHIELD_SERVER_OIP_INFERENCE_SERVICE_H_
