// How the served model looks through the Open Inference Protocol: ModelMetadata (tensors with
// protocol datatypes) and Triton's ModelConfig (tensors with Triton's DataType, batch limits).
// One input "image" (BYTES, one encoded photo per element); outputs "probabilities" (FP32, one row
// of class probabilities per photo) and "labels" (BYTES, the top-k labels per photo).
//
// Thread-safety: free functions without shared state.
#ifndef CROPSHIELD_SERVER_OIP_DESCRIPTIONS_H_
#define CROPSHIELD_SERVER_OIP_DESCRIPTIONS_H_

#include <cstdint>

#include "inference/grpc_predict_v2.pb.h"
#include "server/engine/model.h"

namespace cropshield::oip {

inline constexpr char kPlatform[] = "pytorch_libtorch";

// What the server batches: reported in ModelConfig.
struct BatchingInfo {
  int max_batch_size = 8;
  int64_t max_queue_delay_us = 0;
};

void DescribeModel(const engine::Model& model, inference::ModelMetadataResponse* metadata);
void DescribeConfig(const engine::Model& model, const BatchingInfo& batching,
                    inference::ModelConfig* config);

}  // namespace cropshield::oip

#endif  // CROPSHIELD_SERVER_OIP_DESCRIPTIONS_H_
