// ModelInfer's tensors <-> the core's Predict: which photos a request carries (one BYTES input of
// shape [N] or [N,1], from contents.bytes_contents or raw_input_contents), its top_k parameter
// and requested outputs, and the outputs built from one full Predict answer per photo:
// "probabilities" FP32 [N, classes] and "labels" BYTES [N, top_k], both as raw little-endian
// contents (what tritonclient reads).
//
// Thread-safety: free functions without shared state.
#ifndef CROPSHIELD_SERVER_OIP_TENSORS_H_
#define CROPSHIELD_SERVER_OIP_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cropshield/v1/cropshield.pb.h"
#include "inference/grpc_predict_v2.pb.h"

namespace cropshield::oip {

inline constexpr char kInputName[] = "image";
inline constexpr char kProbabilitiesOutput[] = "probabilities";
inline constexpr char kLabelsOutput[] = "labels";
inline constexpr char kTopKParameter[] = "top_k";
inline constexpr int kDefaultTopK = 3;

// What one ModelInfer request asks for.
struct InferPlan {
  // The encoded photos, pointing into the request (which must outlive the plan).
  std::vector<absl::string_view> photos;
  int top_k = kDefaultTopK;
  // Output names in the response's order: the requested ones, or both.
  std::vector<std::string> outputs;
};

// The photos, top_k (1..num_classes) and outputs of `request`; INVALID_ARGUMENT naming the
// problem for anything else than one BYTES tensor of 1..max_photos photos, a bad top_k or an
// unknown output.
absl::StatusOr<InferPlan> PlanInfer(const inference::ModelInferRequest& request, int num_classes,
                                    int max_photos);

// A protocol version string: "" -> 0 (the served version), digits -> that version;
// INVALID_ARGUMENT otherwise.
absl::StatusOr<int64_t> ParseVersion(absl::string_view version);

// The outputs of `plan` from `answers` (one Predict answer with every class per photo).
void FillInferOutputs(const InferPlan& plan, int num_classes,
                      absl::Span<const cropshield::v1::PredictResponse> answers,
                      inference::ModelInferResponse* response);

// Raw BYTES elements: each a 4-byte little-endian length, then the bytes. INVALID_ARGUMENT for
// a truncated element or more than max_elements.
absl::StatusOr<std::vector<absl::string_view>> DecodeBytesElements(absl::string_view raw,
                                                                   size_t max_elements);
void AppendBytesElement(absl::string_view element, std::string* raw);

}  // namespace cropshield::oip

#endif  // CROPSHIELD_SERVER_OIP_TENSORS_H_
