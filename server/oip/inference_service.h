// The Open Inference Protocol (KServe v2) gRPC front end, inference.GRPCInferenceService, plus
// Triton's ModelConfig and ModelStatistics. A thin translation over the inference core: ModelInfer
// turns its BYTES tensor into one core Predict per photo (InferCall) and the answers into
// "probabilities" and "labels" tensors (tensors.h); the metadata RPCs read the model registry.
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
#include "server/oip/descriptions.h"
#include "server/oip/infer_call.h"

namespace cropshield::oip {

struct InferenceServiceOptions {
  // True while the server is SERVING (ServerReady, ModelReady); required.
  std::function<bool()> serving;
  // Reported by ModelConfig (the core's predict batching).
  BatchingInfo batching;
  // Photos one ModelInfer may carry.
  int max_photos_per_call = 64;
  // As grpc_api::ServiceOptions: finished calls whose response is not taken are cancelled.
  absl::Duration max_response_send_time = absl::Seconds(30);
};

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `core` must outlive the service.
  static absl::StatusOr<std::unique_ptr<InferenceService>> Create(InferenceServiceOptions options,
                                                                  core::InferenceCore* core);

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
  InferenceService(InferenceServiceOptions options, core::InferenceCore* core,
                   std::unique_ptr<ExpiryWatch> send_watch)
      : options_(std::move(options)), core_(core), send_watch_(std::move(send_watch)) {}
  // A new call's reactor, handed to `handle`, which finishes it (or passes it to the core).
  template <typename Handle>
  Reactor* Start(Context* context, Handle handle);
  // A call answered at once with `status` (the response already filled when OK).
  Reactor* Answer(Context* context, const absl::Status& status);
  // ModelInfer's checks and start; an error finishes the call.
  absl::Status StartInfer(const inference::ModelInferRequest& request,
                          inference::ModelInferResponse* response, core::Responder* responder);

  const InferenceServiceOptions options_;
  core::InferenceCore* const core_;
  const std::unique_ptr<ExpiryWatch> send_watch_;  // cancels finished calls nobody reads
  InferCounters counters_;
};

}  // namespace cropshield::oip

#endif  // CROPSHIELD_SERVER_OIP_INFERENCE_SERVICE_H_
