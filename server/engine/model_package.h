// Model packages on disk: `<repository>/<name>/<version>/{model.json, model.pt}`.
// Parsing and validation of the metadata and resolution of a `--model` path; no torch here so
// that tools and fuzzers can use it cheaply.
//
// Thread-safety: all functions are reentrant.
#ifndef CROPSHIELD_SERVER_ENGINE_MODEL_PACKAGE_H_
#define CROPSHIELD_SERVER_ENGINE_MODEL_PACKAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/model_metadata.pb.h"
#include "server/image/preprocess.h"

namespace cropshield::engine {

inline constexpr absl::string_view kMetadataFileName = "model.json";

// A resolved, validated package version.
struct ModelPackage {
  std::string directory;     // the version directory
  std::string weights_path;  // directory / metadata.weights_file
  cropshield::v1::ModelMetadata metadata;
};

// Parses model.json (protobuf JSON mapping; unknown fields are an error) and validates it.
// INVALID_ARGUMENT names the offending field.
absl::StatusOr<cropshield::v1::ModelMetadata> ParseModelMetadata(absl::string_view json);

// Checks that every required field is present and sane.
absl::Status ValidateModelMetadata(const cropshield::v1::ModelMetadata& metadata);

// Checks the quantization record of an INT8 package (type, engine, hashes, counts, agreement).
absl::Status ValidateQuantization(const cropshield::v1::Quantization& quantization);

// The preprocessing a (validated) package asks for, as the image library's options: what the CPU
// path and the GPU path both apply.
image::PreprocessOptions PreprocessOptionsOf(const cropshield::v1::ModelMetadata& metadata);

// XXH3-128 of a file's bytes as 32 lowercase hex digits (canonical, big-endian).
absl::StatusOr<std::string> HashFileXxh3_128(const std::string& path);

// Resolves `path`, which may be a version directory (holds model.json), a model directory (holds
// integer version directories) or a repository (holds model directories). `name` picks the model
// in a repository (empty: the only model there, else error); `version` picks the version (0: the
// highest). Loads and validates the metadata, checks that name/version agree with the directory
// names, and verifies the weights hash. NOT_FOUND when the model or version does not exist.
absl::StatusOr<ModelPackage> ResolveModelPackage(const std::string& path,
                                                 absl::string_view name = "", int64_t version = 0);

}  // namespace cropshield::engine

#endif  // CROPSHIELD_SERVER_ENGINE_MODEL_PACKAGE_H_
