#include "server/rest/oip_json.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "server/oip/tensors.h"
#include "server/rest/http_status.h"

namespace cropshield::rest {
namespace {

using nlohmann::json;
using Input = inference::ModelInferRequest::InferInputTensor;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("infer request: ", what));
}

absl::Status ParseParameter(const std::string& name, const json& value,
                            google::protobuf::Map<std::string, inference::InferParameter>* map) {
  inference::InferParameter& parameter = (*map)[name];
  if (value.is_boolean()) {
    parameter.set_bool_param(value.get<bool>());
  } else if (value.is_number_integer()) {
    parameter.set_int64_param(value.get<int64_t>());
  } else if (value.is_string()) {
    parameter.set_string_param(value.get<std::string>());
  } else {
    return Invalid(absl::StrCat("parameter '", name, "' must be a boolean, integer or string"));
  }
  return absl::OkStatus();
}

absl::Status ParseParameters(const json& object,
                             google::protobuf::Map<std::string, inference::InferParameter>* map) {
  if (object.is_null()) return absl::OkStatus();
  if (!object.is_object()) return Invalid("\"parameters\" must be an object");
  for (const auto& [name, value] : object.items()) {
    CS_RETURN_IF_ERROR(ParseParameter(name, value, map));
  }
  return absl::OkStatus();
}

// Flattens nested arrays of base64 strings into `input`'s bytes contents.
absl::Status AppendElements(const json& data, Input* input) {
  if (data.is_array()) {
    for (const json& element : data) CS_RETURN_IF_ERROR(AppendElements(element, input));
    return absl::OkStatus();
  }
  if (!data.is_string()) {
    return Invalid(absl::StrCat("input '", input->name(), "': BYTES elements must be strings"));
  }
  std::string decoded;
  if (!absl::Base64Unescape(data.get_ref<const std::string&>(), &decoded)) {
    return Invalid(absl::StrCat("input '", input->name(),
                                "': an element is not base64 (BYTES travel base64-encoded in "
                                "JSON)"));
  }
  input->mutable_contents()->add_bytes_contents(std::move(decoded));
  return absl::OkStatus();
}

absl::Status ParseShape(const json& shape, Input* input) {
  if (!shape.is_array()) return Invalid(absl::StrCat("input '", input->name(), "': no shape"));
  for (const json& dim : shape) {
    if (!dim.is_number_integer()) {
      return Invalid(absl::StrCat("input '", input->name(), "': shape must be integers"));
    }
    input->add_shape(dim.get<int64_t>());
  }
  return absl::OkStatus();
}

// One input; binary data (if it has some) is taken from *binary.
absl::Status ParseInput(const json& object, absl::string_view* binary,
                        inference::ModelInferRequest* request) {
  if (!object.is_object()) return Invalid("each input must be an object");
  Input* input = request->add_inputs();
  input->set_name(object.value("name", ""));
  input->set_datatype(object.value("datatype", ""));
  CS_RETURN_IF_ERROR(ParseShape(object.value("shape", json()), input));
  CS_RETURN_IF_ERROR(
      ParseParameters(object.value("parameters", json()), input->mutable_parameters()));
  auto size = input->parameters().find("binary_data_size");
  if (size == input->parameters().end()) {
    return AppendElements(object.value("data", json::array()), input);
  }
  const int64_t bytes = size->second.int64_param();
  if (bytes < 0 || static_cast<size_t>(bytes) > binary->size()) {
    return Invalid(absl::StrCat("input '", input->name(), "': binary_data_size ", bytes,
                                " is more than the ", binary->size(), " bytes left"));
  }
  request->add_raw_input_contents(std::string(binary->substr(0, bytes)));
  binary->remove_prefix(bytes);
  input->mutable_parameters()->erase("binary_data_size");
  return absl::OkStatus();
}

absl::Status ParseOutputs(const json& outputs, InferRequestJson* out) {
  if (outputs.is_null()) return absl::OkStatus();
  if (!outputs.is_array()) return Invalid("\"outputs\" must be an array");
  for (const json& object : outputs) {
    if (!object.is_object() || !object.contains("name") || !object["name"].is_string()) {
      return Invalid("each output must be an object with a name");
    }
    auto* output = out->request.add_outputs();
    output->set_name(object["name"].get<std::string>());
    const json parameters = object.value("parameters", json::object());
    if (parameters.is_object() && parameters.value("binary_data", false) == true) {
      out->binary_outputs.push_back(output->name());
    }
  }
  return absl::OkStatus();
}

// Fills `out` from the parsed JSON document.
absl::Status ParseDocument(const json& document, absl::string_view binary, InferRequestJson* out) {
  if (!document.is_object()) return Invalid("the body must be a JSON object");
  inference::ModelInferRequest& request = out->request;
  if (document.contains("id")) {
    if (!document["id"].is_string()) return Invalid("\"id\" must be a string");
    request.set_id(document["id"].get<std::string>());
  }
  CS_RETURN_IF_ERROR(
      ParseParameters(document.value("parameters", json()), request.mutable_parameters()));
  auto all_binary = request.parameters().find("binary_data_output");
  out->all_outputs_binary =
      all_binary != request.parameters().end() && all_binary->second.bool_param();
  const json inputs = document.value("inputs", json());
  if (!inputs.is_array()) return Invalid("\"inputs\" must be an array");
  for (const json& input : inputs) CS_RETURN_IF_ERROR(ParseInput(input, &binary, &request));
  if (!binary.empty()) {
    return Invalid(absl::StrCat(binary.size(), " bytes of binary data no input claims"));
  }
  return ParseOutputs(document.value("outputs", json()), out);
}

json OutputData(const inference::ModelInferResponse::InferOutputTensor& output,
                const std::string& raw) {
  json data = json::array();
  if (output.datatype() == "FP32") {
    for (size_t at = 0; at + 4 <= raw.size(); at += 4) {
      float value = 0;
      std::memcpy(&value, raw.data() + at, sizeof(value));  // little-endian hosts only
      data.push_back(value);
    }
  } else if (auto elements = oip::DecodeBytesElements(raw, raw.size()); elements.ok()) {
    for (absl::string_view element : *elements) data.push_back(std::string(element));
  }
  return data;
}

json ParametersJson(const google::protobuf::Map<std::string, inference::InferParameter>& map) {
  json out = json::object();
  for (const auto& [name, value] : map) {
    if (value.has_bool_param()) out[name] = value.bool_param();
    if (value.has_int64_param()) out[name] = value.int64_param();
    if (value.has_string_param()) out[name] = value.string_param();
  }
  return out;
}

json TensorMetadataJson(const inference::ModelMetadataResponse::TensorMetadata& tensor) {
  return {{"name", tensor.name()},
          {"datatype", tensor.datatype()},
          {"shape", std::vector<int64_t>(tensor.shape().begin(), tensor.shape().end())}};
}

}  // namespace

absl::Status ParseInferRequest(absl::string_view body, size_t json_length, InferRequestJson* out) {
  if (json_length > body.size()) {
    return Invalid(absl::StrCat("Inference-Header-Content-Length ", json_length,
                                " is more than the body's ", body.size(), " bytes"));
  }
  const absl::string_view text = body.substr(0, json_length);
  const json document = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) return Invalid("the body is not valid JSON");
  return ParseDocument(document, body.substr(json_length), out);
}

EncodedResponse EncodeInferResponse(const inference::ModelInferResponse& response,
                                    const InferRequestJson& request) {
  json outputs = json::array();
  std::string binary;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const std::string& raw =
        i < response.raw_output_contents_size() ? response.raw_output_contents(i) : std::string();
    json tensor = {{"name", output.name()},
                   {"datatype", output.datatype()},
                   {"shape", std::vector<int64_t>(output.shape().begin(), output.shape().end())}};
    const auto& wanted = request.binary_outputs;
    if (request.all_outputs_binary ||
        std::find(wanted.begin(), wanted.end(), output.name()) != wanted.end()) {
      tensor["parameters"] = {{"binary_data_size", raw.size()}};
      binary += raw;
    } else {
      tensor["data"] = OutputData(output, raw);
    }
    outputs.push_back(std::move(tensor));
  }
  json document = {{"model_name", response.model_name()},
                   {"model_version", response.model_version()},
                   {"outputs", std::move(outputs)}};
  if (!response.id().empty()) document["id"] = response.id();
  if (!response.parameters().empty())
    document["parameters"] = ParametersJson(response.parameters());
  EncodedResponse encoded;
  encoded.body = Dump(document);
  encoded.json_length = encoded.body.size();
  encoded.body += binary;
  return encoded;
}

std::string ServerMetadataJson(const inference::ServerMetadataResponse& metadata) {
  return Dump(json{{"name", metadata.name()},
                   {"version", metadata.version()},
                   {"extensions", std::vector<std::string>(metadata.extensions().begin(),
                                                           metadata.extensions().end())}});
}

std::string ModelMetadataJson(const inference::ModelMetadataResponse& metadata) {
  json inputs = json::array();
  for (const auto& tensor : metadata.inputs()) inputs.push_back(TensorMetadataJson(tensor));
  json outputs = json::array();
  for (const auto& tensor : metadata.outputs()) outputs.push_back(TensorMetadataJson(tensor));
  return Dump(json{{"name", metadata.name()},
                   {"versions", std::vector<std::string>(metadata.versions().begin(),
                                                         metadata.versions().end())},
                   {"platform", metadata.platform()},
                   {"inputs", std::move(inputs)},
                   {"outputs", std::move(outputs)}});
}

}  // namespace cropshield::rest
