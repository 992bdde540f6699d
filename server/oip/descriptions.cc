#include "server/oip/descriptions.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/oip/tensors.h"

namespace cropshield::oip {
namespace {

// One tensor in both vocabularies. `shape` leaves out the batch dimension (-1 in metadata).
struct Tensor {
  bool input;
  const char* name;
  const char* datatype;
  inference::DataType config_type;
  std::vector<int64_t> shape;
};

std::vector<Tensor> Tensors(const engine::Model& model) {
  return {{true, kInputName, "BYTES", inference::TYPE_STRING, {1}},
          {false, kProbabilitiesOutput, "FP32", inference::TYPE_FP32, {model.num_classes()}},
          {false, kLabelsOutput, "BYTES", inference::TYPE_STRING, {-1}}};
}

}  // namespace

void DescribeModel(const engine::Model& model, inference::ModelMetadataResponse* metadata) {
  metadata->set_name(model.name());
  metadata->add_versions(absl::StrCat(model.version()));
  metadata->set_platform(kPlatform);
  for (const Tensor& tensor : Tensors(model)) {
    auto* described = tensor.input ? metadata->add_inputs() : metadata->add_outputs();
    described->set_name(tensor.name);
    described->set_datatype(tensor.datatype);
    // The input is one photo per element: [N] (or [N,1], which ModelConfig's dims describe).
    described->add_shape(-1);
    if (!tensor.input) described->mutable_shape()->Add(tensor.shape.begin(), tensor.shape.end());
  }
}

void DescribeConfig(const engine::Model& model, const BatchingInfo& batching,
                    inference::ModelConfig* config) {
  config->set_name(model.name());
  config->set_platform(kPlatform);
  config->set_backend("pytorch");
  config->set_max_batch_size(batching.max_batch_size);
  config->mutable_dynamic_batching()->set_max_queue_delay_microseconds(
      static_cast<uint64_t>(batching.max_queue_delay_us));
  for (const Tensor& tensor : Tensors(model)) {
    if (tensor.input) {
      auto* input = config->add_input();
      input->set_name(tensor.name);
      input->set_data_type(tensor.config_type);
      input->mutable_dims()->Add(tensor.shape.begin(), tensor.shape.end());
    } else {
      auto* output = config->add_output();
      output->set_name(tensor.name);
      output->set_data_type(tensor.config_type);
      output->mutable_dims()->Add(tensor.shape.begin(), tensor.shape.end());
    }
  }
}

}  // namespace cropshield::oip
