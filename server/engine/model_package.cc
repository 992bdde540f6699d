#include "server/engine/model_package.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace cropshield::engine {
namespace {

namespace fs = std::filesystem;
using cropshield::v1::ModelMetadata;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("model metadata: ", what));
}

absl::StatusOr<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path.string()));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

bool IsVersionName(const std::string& name, int64_t* version) {
  if (name.empty() || !std::all_of(name.begin(), name.end(), absl::ascii_isdigit)) return false;
  return absl::SimpleAtoi(name, version) && *version > 0;
}

// Integer-named subdirectories of `dir` with their versions, ascending.
std::vector<std::pair<int64_t, fs::path>> ListVersions(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    int64_t version = 0;
    if (entry.is_directory() && IsVersionName(entry.path().filename().string(), &version)) {
      versions.emplace_back(version, entry.path());
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

bool HasVersions(const fs::path& dir) { return !ListVersions(dir).empty(); }

absl::StatusOr<ModelPackage> LoadVersionDirectory(const fs::path& dir) {
  CS_ASSIGN_OR_RETURN(std::string json, ReadSmallFile(dir / std::string(kMetadataFileName)));
  absl::StatusOr<ModelMetadata> metadata = ParseModelMetadata(json);
  if (!metadata.ok()) {
    return absl::InvalidArgumentError(absl::StrCat((dir / std::string(kMetadataFileName)).string(),
                                                   ": ", metadata.status().message()));
  }
  ModelPackage package;
  package.directory = dir.string();
  package.weights_path = (dir / metadata->weights_file()).string();
  package.metadata = *std::move(metadata);
  CS_ASSIGN_OR_RETURN(std::string hash, HashFileXxh3_128(package.weights_path));
  if (hash != package.metadata.weights_xxh3_128()) {
    return absl::InvalidArgumentError(absl::StrCat(
        package.weights_path, ": content hash ", hash, " differs from weights_xxh3_128 ",
        package.metadata.weights_xxh3_128(), " in model.json (corrupt or replaced weights file)"));
  }
  return package;
}

// Picks `version` (0: highest) among the version directories of a model directory.
absl::StatusOr<ModelPackage> LoadFromModelDirectory(const fs::path& model_dir, int64_t version) {
  std::vector<std::pair<int64_t, fs::path>> versions = ListVersions(model_dir);
  if (versions.empty()) {
    return absl::NotFoundError(absl::StrCat("no version directories in ", model_dir.string()));
  }
  fs::path chosen;
  int64_t chosen_version = 0;
  if (version == 0) {
    std::tie(chosen_version, chosen) = versions.back();
  } else {
    for (const auto& [v, p] : versions) {
      if (v == version) std::tie(chosen_version, chosen) = std::make_pair(v, p);
    }
    if (chosen.empty()) {
      return absl::NotFoundError(
          absl::StrCat("model ", model_dir.filename().string(), " has no version ", version));
    }
  }
  CS_ASSIGN_OR_RETURN(ModelPackage package, LoadVersionDirectory(chosen));
  if (package.metadata.version() != chosen_version) {
    return absl::InvalidArgumentError(
        absl::StrCat(package.directory, ": model.json says version ", package.metadata.version(),
                     " but the directory is version ", chosen_version));
  }
  if (package.metadata.name() != model_dir.filename().string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(package.directory, ": model.json says name '", package.metadata.name(),
                     "' but the directory is '", model_dir.filename().string(), "'"));
  }
  return package;
}

bool IsLowerHex(absl::string_view text, size_t digits) {
  return text.size() == digits && std::all_of(text.begin(), text.end(), [](char c) {
           return absl::ascii_isxdigit(c) && !absl::ascii_isupper(c);
         });
}

// Fractions are in [0, 1]; NaN (which JSON allows) fails the comparison too.
bool IsFraction(double value) { return value >= 0.0 && value <= 1.0; }

}  // namespace

absl::Status ValidateQuantization(const cropshield::v1::Quantization& q) {
  if (q.dtype() != "int8") return Invalid("quantization.dtype must be \"int8\"");
  if (q.engine() != "onednn" && q.engine() != "qnnpack" && q.engine() != "fbgemm") {
    return Invalid("quantization.engine must be \"onednn\", \"qnnpack\" or \"fbgemm\"");
  }
  for (const std::string& layer : q.fp32_layers()) {
    if (layer.empty()) return Invalid("quantization.fp32_layers has an empty name");
  }
  if (!IsLowerHex(q.calibration_sha256(), 64) || !IsLowerHex(q.heldout_sha256(), 64)) {
    return Invalid(
        "quantization.calibration_sha256 and quantization.heldout_sha256 must be 64 lowercase hex "
        "digits");
  }
  if (q.calibration_images() < 1 || q.heldout_images() < 1) {
    return Invalid("quantization.calibration_images and quantization.heldout_images must be >= 1");
  }
  if (!IsFraction(q.heldout_top1_agreement()) || !IsFraction(q.heldout_max_probability_diff())) {
    return Invalid(
        "quantization.heldout_top1_agreement and quantization.heldout_max_probability_diff must be "
        "in [0, 1]");
  }
  return absl::OkStatus();
}

absl::Status ValidateModelMetadata(const ModelMetadata& m) {
  if (m.format_version() != 1) {
    return Invalid(absl::StrCat("format_version must be 1, got ", m.format_version()));
  }
  if (m.name().empty()) return Invalid("missing field 'name'");
  if (m.version() <= 0) return Invalid("missing or non-positive field 'version'");
  if (m.labels_size() < 2) return Invalid("field 'labels' needs at least 2 class labels");
  std::set<absl::string_view> seen_labels;
  for (int i = 0; i < m.labels_size(); ++i) {
    if (m.labels(i).empty()) return Invalid(absl::StrCat("label ", i, " is empty"));
    // A repeated label could never be asked for by name (Explain's class_label) and makes two
    // classes indistinguishable in every answer.
    if (!seen_labels.insert(m.labels(i)).second) {
      return Invalid(absl::StrCat("label ", i, " '", m.labels(i), "' appears twice"));
    }
  }
  if (m.weights_file().empty()) return Invalid("missing field 'weights_file'");
  if (m.weights_file().find('/') != std::string::npos || m.weights_file() == "..") {
    return Invalid("'weights_file' must be a plain file name inside the package directory");
  }
  if (!IsLowerHex(m.weights_xxh3_128(), 32)) {
    return Invalid("'weights_xxh3_128' must be 32 lowercase hex digits");
  }
  if (!m.has_preprocessing()) return Invalid("missing field 'preprocessing'");
  const auto& p = m.preprocessing();
  if (p.input_size() < 8 || p.input_size() > 4096) {
    return Invalid("preprocessing.input_size must be in [8, 4096]");
  }
  if (p.resize_shorter_side() < p.input_size() || p.resize_shorter_side() > 8192) {
    return Invalid("preprocessing.resize_shorter_side must be in [input_size, 8192]");
  }
  if (p.interpolation() != "bilinear") {
    return Invalid("preprocessing.interpolation must be \"bilinear\"");
  }
  if (p.crop() != "center") return Invalid("preprocessing.crop must be \"center\"");
  if (p.mean_size() != 3 || p.std_size() != 3) {
    return Invalid("preprocessing.mean and preprocessing.std need 3 values each");
  }
  // JSON accepts "NaN" and "Infinity" for floats; either would turn every model input into NaN
  // or zeros.
  for (float mean : p.mean()) {
    if (!std::isfinite(mean)) return Invalid("preprocessing.mean values must be finite");
  }
  for (float s : p.std()) {
    if (!(s > 0) || !std::isfinite(s)) {
      return Invalid("preprocessing.std values must be positive and finite");
    }
  }
  if (p.channel_order() != "RGB" && p.channel_order() != "BGR") {
    return Invalid("preprocessing.channel_order must be \"RGB\" or \"BGR\"");
  }
  if (!m.has_grad_cam()) return Invalid("missing field 'grad_cam'");
  if (m.grad_cam().features_method().empty() || m.grad_cam().head_method().empty()) {
    return Invalid("grad_cam.features_method and grad_cam.head_method are required");
  }
  if (m.grad_cam().target_layer().empty()) return Invalid("missing field 'grad_cam.target_layer'");
  if (m.has_quantization()) return ValidateQuantization(m.quantization());
  return absl::OkStatus();
}

absl::StatusOr<ModelMetadata> ParseModelMetadata(absl::string_view json) {
  ModelMetadata metadata;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &metadata, options);
  if (!status.ok()) {
    return Invalid(
        absl::StrCat("not valid JSON for ModelMetadata: ", status.message().as_string()));
  }
  CS_RETURN_IF_ERROR(ValidateModelMetadata(metadata));
  return metadata;
}

image::PreprocessOptions PreprocessOptionsOf(const cropshield::v1::ModelMetadata& metadata) {
  const auto& p = metadata.preprocessing();
  image::PreprocessOptions options;
  options.resize_shorter_side = p.resize_shorter_side();
  options.input_size = p.input_size();
  options.bgr = p.channel_order() == "BGR";
  for (int c = 0; c < 3; ++c) {
    options.mean[c] = p.mean(c);
    options.std[c] = p.std(c);
  }
  return options;
}

absl::StatusOr<std::string> HashFileXxh3_128(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot open weights file ", path));
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(XXH3_createState(),
                                                                        &XXH3_freeState);
  XXH3_128bits_reset(state.get());
  std::vector<char> buffer(1 << 20);
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), file.get())) > 0) {
    XXH3_128bits_update(state.get(), buffer.data(), n);
  }
  if (std::ferror(file.get())) return absl::DataLossError(absl::StrCat("cannot read ", path));
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state.get()));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(32);
  for (unsigned char byte : canonical.digest) {
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 15]);
  }
  return hex;
}

absl::StatusOr<ModelPackage> ResolveModelPackage(const std::string& path, absl::string_view name,
                                                 int64_t version) {
  fs::path root(path);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return absl::NotFoundError(absl::StrCat("model path ", path, " is not a directory"));
  }
  if (fs::exists(root / std::string(kMetadataFileName), ec)) {  // a version directory
    CS_ASSIGN_OR_RETURN(ModelPackage package, LoadVersionDirectory(root));
    if (!name.empty() && package.metadata.name() != name) {
      return absl::NotFoundError(absl::StrCat("model ", name, " is not served (package holds ",
                                              package.metadata.name(), ")"));
    }
    if (version != 0 && package.metadata.version() != version) {
      return absl::NotFoundError(absl::StrCat("model ", package.metadata.name(), " has no version ",
                                              version, " (package holds version ",
                                              package.metadata.version(), ")"));
    }
    return package;
  }
  if (HasVersions(root)) {  // a model directory
    if (!name.empty() && root.filename().string() != name) {
      return absl::NotFoundError(absl::StrCat("model ", name, " is not in ", path));
    }
    return LoadFromModelDirectory(root, version);
  }
  // A repository: model directories that hold versions.
  std::vector<std::string> models;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory() && HasVersions(entry.path())) {
      models.push_back(entry.path().filename().string());
    }
  }
  std::sort(models.begin(), models.end());
  if (models.empty()) {
    return absl::NotFoundError(
        absl::StrCat(path,
                     " holds no model package (expected model.json, version directories, or model "
                     "directories with version directories)"));
  }
  if (name.empty()) {
    if (models.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("repository ", path, " holds several models (",
                                                     absl::StrJoin(models, ", "),
                                                     "): choose one with --model_name"));
    }
    return LoadFromModelDirectory(root / models.front(), version);
  }
  if (std::find(models.begin(), models.end(), std::string(name)) == models.end()) {
    return absl::NotFoundError(absl::StrCat("model ", name, " is not in repository ", path,
                                            " (has: ", absl::StrJoin(models, ", "), ")"));
  }
  return LoadFromModelDirectory(root / std::string(name), version);
}

}  // namespace cropshield::engine
