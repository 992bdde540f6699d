// libFuzzer target for model metadata parsing (server/engine/model_package.h): the input is the
// text of a model.json. ParseModelMetadata must either refuse it with INVALID_ARGUMENT and a
// message, or return metadata that passes ValidateModelMetadata, has distinct labels and finite
// normalisation constants, and survives a round trip through the protobuf JSON printer and parser
// unchanged.
//
// Build with clang (CROPSHIELD_SANITIZE=fuzzer): ninja model_metadata_fuzzer, then
//   ./tests/fuzz/model_metadata_fuzzer -dict=tests/fuzz/model_package/model_json.dict \
//     tests/fuzz/model_package/corpus
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/model_metadata.pb.h"
#include "google/protobuf/util/json_util.h"
#include "server/engine/model_package.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using cropshield::v1::ModelMetadata;
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ModelMetadata> metadata = cropshield::engine::ParseModelMetadata(json);
  if (!metadata.ok()) {
    Check(metadata.status().code() == absl::StatusCode::kInvalidArgument &&
          !metadata.status().message().empty());
    return 0;
  }
  Check(cropshield::engine::ValidateModelMetadata(*metadata).ok());
  Check(metadata->weights_file().find('/') == std::string::npos);
  const auto& labels = metadata->labels();
  Check(absl::flat_hash_set<std::string>(labels.begin(), labels.end()).size() ==
        static_cast<size_t>(labels.size()));
  for (float v : metadata->preprocessing().mean()) Check(std::isfinite(v));
  for (float v : metadata->preprocessing().std()) Check(std::isfinite(v) && v > 0);

  std::string printed;
  Check(google::protobuf::util::MessageToJsonString(*metadata, &printed).ok());
  absl::StatusOr<ModelMetadata> reparsed = cropshield::engine::ParseModelMetadata(printed);
  Check(reparsed.ok());
  Check(reparsed->SerializeAsString() == metadata->SerializeAsString());
  return 0;
}
