// INT8 packages (issue #15): the device check and the quantized engine a package was converted for.
#include <ATen/Context.h>
#include <torch/script.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/engine/model.h"
#include "server/engine/model_impl.h"

namespace cropshield::engine {
namespace {

std::string EngineName(at::QEngine engine) {
  switch (engine) {
    case at::kFBGEMM:
      return "fbgemm";
    case at::kQNNPACK:
      return "qnnpack";
    case at::kONEDNN:
      return "onednn";
    default:
      return "none";
  }
}

}  // namespace

absl::Status CheckQuantizedPackageDevice(const ModelPackage& package, bool device_is_cuda) {
  if (!package.metadata.has_quantization() || !device_is_cuda) return absl::OkStatus();
  // Quantized CPU kernels (onednn, fbgemm, qnnpack) have no CUDA implementation.
  return absl::FailedPreconditionError(absl::StrCat(
      package.weights_path, ": ", package.metadata.quantization().dtype(), " package (engine ",
      package.metadata.quantization().engine(),
      ") is CPU-only and cannot be served on CUDA; serve it with --device=cpu or serve an fp32 "
      "package on the GPU"));
}

absl::Status SelectQuantizedEngine(const std::string& engine) {
  const std::vector<at::QEngine>& supported = at::globalContext().supportedQEngines();
  std::vector<std::string> names;
  for (at::QEngine candidate : supported) {
    if (EngineName(candidate) == engine) {
      // Process-wide; it picks the kernels quantized modules prepack their weights for at load.
      at::globalContext().setQEngine(candidate);
      return absl::OkStatus();
    }
    if (candidate != at::QEngine::NoQEngine) names.push_back(EngineName(candidate));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the package was quantized for the '", engine, "' engine, which this libtorch lacks (has: ",
      names.empty() ? "none" : absl::StrJoin(names, ", "), "); re-export it for one of those"));
}

}  // namespace cropshield::engine
