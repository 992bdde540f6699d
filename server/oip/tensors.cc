#include "server/oip/tensors.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace cropshield::oip {
namespace {

using Input = inference::ModelInferRequest::InferInputTensor;

void AppendUint32(uint32_t value, std::string* raw) {
  for (int shift = 0; shift < 32; shift += 8) raw->push_back(static_cast<char>(value >> shift));
}

uint32_t ReadUint32(absl::string_view bytes) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

// N from a shape of [N] or [N, 1], 1 <= N <= max_photos.
absl::StatusOr<int> PhotoCount(const Input& input, int max_photos) {
  const auto& shape = input.shape();
  if (shape.empty() || shape.size() > 2 || (shape.size() == 2 && shape[1] != 1)) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(),
                                                   "' must have shape [N] or [N,1], got [",
                                                   absl::StrJoin(shape, ","), "]"));
  }
  if (shape[0] < 1 || shape[0] > max_photos) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' must hold 1..",
                                                   max_photos, " photos, got ", shape[0]));
  }
  return static_cast<int>(shape[0]);
}

// The photos of the one input, from its contents or from the request's raw contents.
absl::StatusOr<std::vector<absl::string_view>> Photos(const inference::ModelInferRequest& request,
                                                      int max_photos) {
  if (request.inputs_size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("ModelInfer takes one input tensor ('",
                                                   kInputName, "', BYTES), got ",
                                                   request.inputs_size()));
  }
  const Input& input = request.inputs(0);
  if (input.datatype() != "BYTES") {
    return absl::InvalidArgumentError(absl::StrCat(
        "input '", input.name(), "' must have datatype BYTES, got '", input.datatype(), "'"));
  }
  CS_ASSIGN_OR_RETURN(const int count, PhotoCount(input, max_photos));
  std::vector<absl::string_view> photos;
  if (request.raw_input_contents_size() > 1) {
    return absl::InvalidArgumentError("raw_input_contents must have one entry per input (1)");
  } else if (request.raw_input_contents_size() == 1) {
    if (input.contents().bytes_contents_size() > 0) {
      return absl::InvalidArgumentError(
          "input contents and raw_input_contents are both set; send one");
    }
    CS_ASSIGN_OR_RETURN(photos, DecodeBytesElements(request.raw_input_contents(0), count));
  } else {
    photos.assign(input.contents().bytes_contents().begin(),
                  input.contents().bytes_contents().end());
  }
  if (static_cast<int>(photos.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat("input '", input.name(), "' has shape [", count,
                                                   "] but holds ", photos.size(), " elements"));
  }
  return photos;
}

absl::StatusOr<int> TopK(const inference::ModelInferRequest& request, int num_classes) {
  auto it = request.parameters().find(kTopKParameter);
  if (it == request.parameters().end()) return std::min(kDefaultTopK, num_classes);
  if (it->second.parameter_choice_case() != inference::InferParameter::kInt64Param ||
      it->second.int64_param() < 1 || it->second.int64_param() > num_classes) {
    return absl::InvalidArgumentError(
        absl::StrCat("parameter top_k must be an int64_param in 1..", num_classes));
  }
  return static_cast<int>(it->second.int64_param());
}

absl::StatusOr<std::vector<std::string>> Outputs(const inference::ModelInferRequest& request) {
  if (request.outputs().empty())
    return std::vector<std::string>{kProbabilitiesOutput, kLabelsOutput};
  std::vector<std::string> outputs;
  for (const auto& output : request.outputs()) {
    if (output.name() != kProbabilitiesOutput && output.name() != kLabelsOutput) {
      return absl::InvalidArgumentError(absl::StrCat("unknown output '", output.name(), "' (the ",
                                                     "outputs are '", kProbabilitiesOutput,
                                                     "' and '", kLabelsOutput, "')"));
    }
    outputs.push_back(output.name());
  }
  return outputs;
}

// Appends an output tensor of `shape` and its raw contents.
void AddOutput(const std::string& name, const char* datatype, std::vector<int64_t> shape,
               std::string raw, inference::ModelInferResponse* response) {
  auto* output = response->add_outputs();
  output->set_name(name);
  output->set_datatype(datatype);
  output->mutable_shape()->Add(shape.begin(), shape.end());
  response->add_raw_output_contents(std::move(raw));
}

std::string RawProbabilities(int num_classes,
                             absl::Span<const cropshield::v1::PredictResponse> answers) {
  std::string raw;
  raw.reserve(answers.size() * num_classes * sizeof(float));
  for (const auto& answer : answers) {
    std::vector<float> probabilities(num_classes, 0.0f);
    for (const auto& prediction : answer.predictions()) {
      if (prediction.class_index() >= 0 && prediction.class_index() < num_classes) {
        probabilities[prediction.class_index()] = prediction.probability();
      }
    }
    for (float p : probabilities) {
      uint32_t bits;
      std::memcpy(&bits, &p, sizeof(bits));
      AppendUint32(bits, &raw);
    }
  }
  return raw;
}

std::string RawLabels(int top_k, absl::Span<const cropshield::v1::PredictResponse> answers) {
  std::string raw;
  for (const auto& answer : answers) {
    for (int i = 0; i < top_k; ++i) {
      AppendBytesElement(i < answer.predictions_size() ? answer.predictions(i).label() : "", &raw);
    }
  }
  return raw;
}

}  // namespace

absl::StatusOr<InferPlan> PlanInfer(const inference::ModelInferRequest& request, int num_classes,
                                    int max_photos) {
  InferPlan plan;
  CS_ASSIGN_OR_RETURN(plan.photos, Photos(request, max_photos));
  CS_ASSIGN_OR_RETURN(plan.top_k, TopK(request, num_classes));
  CS_ASSIGN_OR_RETURN(plan.outputs, Outputs(request));
  return plan;
}

absl::StatusOr<int64_t> ParseVersion(absl::string_view version) {
  int64_t parsed = 0;
  if (version.empty()) return 0;
  if (!absl::SimpleAtoi(version, &parsed) || parsed < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version must be a positive integer, got '", version, "'"));
  }
  return parsed;
}

void FillInferOutputs(const InferPlan& plan, int num_classes,
                      absl::Span<const cropshield::v1::PredictResponse> answers,
                      inference::ModelInferResponse* response) {
  const int64_t n = static_cast<int64_t>(answers.size());
  for (const std::string& name : plan.outputs) {
    if (name == kProbabilitiesOutput) {
      AddOutput(name, "FP32", {n, num_classes}, RawProbabilities(num_classes, answers), response);
    } else {
      AddOutput(name, "BYTES", {n, plan.top_k}, RawLabels(plan.top_k, answers), response);
    }
  }
}

absl::StatusOr<std::vector<absl::string_view>> DecodeBytesElements(absl::string_view raw,
                                                                   size_t max_elements) {
  std::vector<absl::string_view> elements;
  while (!raw.empty()) {
    if (elements.size() == max_elements) {
      return absl::InvalidArgumentError(
          absl::StrCat("raw BYTES contents hold more than ", max_elements, " elements"));
    }
    if (raw.size() < 4) {
      return absl::InvalidArgumentError("raw BYTES contents end inside an element's length");
    }
    const uint32_t length = ReadUint32(raw);
    raw.remove_prefix(4);
    if (length > raw.size()) {
      return absl::InvalidArgumentError(absl::StrCat("raw BYTES element ", elements.size(),
                                                     " claims ", length, " bytes, ", raw.size(),
                                                     " remain"));
    }
    elements.push_back(raw.substr(0, length));
    raw.remove_prefix(length);
  }
  return elements;
}

void AppendBytesElement(absl::string_view element, std::string* raw) {
  AppendUint32(static_cast<uint32_t>(element.size()), raw);
  raw->append(element.data(), element.size());
}

}  // namespace cropshield::oip
