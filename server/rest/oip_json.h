// The Open Inference Protocol's REST (HTTP/JSON) encoding <-> its protobuf messages, which
// InferenceProtocol runs (server/oip/protocol.h). BYTES tensor elements travel as base64 strings
// in JSON; Triton's binary data extension is understood both ways: a request whose
// "Inference-Header-Content-Length" header gives the JSON's length carries each input with
// parameters.binary_data_size as raw bytes after the JSON (BYTES elements each a 4-byte
// little-endian length, then the bytes), and an output requested with parameters.binary_data
// (or the request parameter binary_data_output) comes back the same way.
//
// Thread-safety: free functions without shared state.
#ifndef CROPSHIELD_SERVER_REST_OIP_JSON_H_
#define CROPSHIELD_SERVER_REST_OIP_JSON_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "inference/grpc_predict_v2.pb.h"

namespace cropshield::rest {

struct InferRequestJson {
  inference::ModelInferRequest request;
  // Outputs to send as binary data (by name).
  std::vector<std::string> binary_outputs;
  bool all_outputs_binary = false;  // the request parameter binary_data_output
};

// Parses an infer request body: the JSON is body[0, json_length); binary data follows.
// INVALID_ARGUMENT naming the problem (JSON syntax, field types, base64, binary sizes).
absl::Status ParseInferRequest(absl::string_view body, size_t json_length, InferRequestJson* out);

struct EncodedResponse {
  std::string body;
  size_t json_length = 0;  // == body.size() without binary outputs
};
EncodedResponse EncodeInferResponse(const inference::ModelInferResponse& response,
                                    const InferRequestJson& request);

std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata);
std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata);

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_OIP_JSON_H_
