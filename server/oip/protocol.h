// The Open Inference Protocol (KServe v2) over the inference core, free of any transport: the
// gRPC service (inference_service.h) and the REST routes (server/rest) translate their wire
// formats to these protobuf messages and call the same methods, so both answer alike.
//
// Thread-safety: every method may be called concurrently; the core must outlive the protocol.
#ifndef CROPSHIELD_SERVER_OIP_PROTOCOL_H_
#define CROPSHIELD_SERVER_OIP_PROTOCOL_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "inference/grpc_predict_v2.pb.h"
#include "server/core/inference_core.h"
#include "server/oip/descriptions.h"
#include "server/oip/infer_call.h"

namespace cropshield::oip {

struct ProtocolOptions {
  // True while the server is SERVING (ServerReady, ModelReady); required.
  std::function<bool()> serving;
  // Reported by ModelConfig (the core's predict batching).
  BatchingInfo batching;
  // Photos one ModelInfer may carry.
  int max_photos_per_call = 64;
};

class InferenceProtocol {
 public:
  static absl::StatusOr<std::unique_ptr<InferenceProtocol>> Create(ProtocolOptions options,
                                                                   core::InferenceCore* core);

  // SERVING, with a model.
  bool ServerReady() const;
  // SERVING, and `name` at `version` ("" = the served one) is loaded.
  bool ModelReady(const std::string& name, const std::string& version) const;
  void ServerMetadata(inference::ServerMetadataResponse* response) const;
  absl::Status ModelMetadata(const std::string& name, const std::string& version,
                             inference::ModelMetadataResponse* response) const;
  absl::Status ModelConfig(const std::string& name, const std::string& version,
                           inference::ModelConfig* config) const;
  // With neither name nor version: every model served.
  absl::Status ModelStatistics(const std::string& name, const std::string& version,
                               inference::ModelStatisticsResponse* response) const;
  // Starts ModelInfer (see InferCall): on OK, `responder` is finished later with `response`
  // filled; on an error nothing was started and the caller finishes its call with it. `request`,
  // `response` and `responder` must stay valid until the responder is finished.
  absl::Status StartInfer(const inference::ModelInferRequest& request,
                          inference::ModelInferResponse* response, core::Responder* responder);

 private:
  InferenceProtocol(ProtocolOptions options, core::InferenceCore* core)
      : options_(std::move(options)), core_(core) {}

  const ProtocolOptions options_;
  core::InferenceCore* const core_;
  InferCounters counters_;
};

}  // namespace cropshield::oip

#endif  // CROPSHIELD_SERVER_OIP_PROTOCOL_H_
