#include "server/engine/model.h"

#include <malloc.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <random>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace cropshield::engine {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

absl::StatusOr<torch::Device> ParseDevice(const std::string& spec) {
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "auto") {
    return CudaAvailable() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (spec == "cuda" || absl::StartsWith(spec, "cuda:")) {
    if (!CudaAvailable()) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device ", spec, " asked for CUDA but none is available in this build/host"));
    }
    int index = 0;
    if (spec.size() > 5 && !absl::SimpleAtoi(spec.substr(5), &index)) {
      return absl::InvalidArgumentError(absl::StrCat("bad device '", spec, "'"));
    }
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown device '", spec, "' (expected auto, cpu, cuda or cuda:N)"));
}

// Deterministic inputs roughly distributed like normalised photos.
torch::Tensor WarmupInput(int batch, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(batch) * 3 * size * size);
  for (float& v : values) v = normal(rng);
  return torch::from_blob(values.data(), {batch, 3, size, size}, torch::kFloat32).clone();
}

constexpr double kCamEpsilon = 1e-12;

}  // namespace

struct Model::Impl {
  torch::Device device{torch::kCPU};
  std::string features_method;
  std::string head_method;
  // The module Predict runs: the frozen + optimised one when it passed verification.
  // TorchScript methods are not const but are safe to call concurrently.
  mutable torch::jit::Module serving;
  // The unfrozen module with its exported features/head methods (for Grad-CAM).
  mutable torch::jit::Module original;
};

Model::Model(ModelPackage package, std::unique_ptr<Impl> impl)
    : package_(std::move(package)), impl_(std::move(impl)) {}

Model::~Model() = default;

void ConfigureTorchRuntime(int intra_op_threads) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  if (intra_op_threads > 0) torch::set_num_threads(intra_op_threads);
  try {
    torch::set_num_interop_threads(1);
  } catch (const std::exception&) {
    // Already set or already used: keep what is there.
  }
}

bool CudaAvailable() {
  try {
    return torch::cuda::is_available();
  } catch (const std::exception&) {
    return false;
  }
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(ModelOptions options) {
  const auto load_start = std::chrono::steady_clock::now();
  CS_ASSIGN_OR_RETURN(torch::Device device, ParseDevice(options.device));
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  const cropshield::v1::ModelMetadata& meta = options.package.metadata;
  impl->features_method = meta.grad_cam().features_method();
  impl->head_method = meta.grad_cam().head_method();
  const std::string& path = options.package.weights_path;
  const int size = meta.preprocessing().input_size();
  const int classes = meta.labels_size();
  LoadReport report;
  torch::Tensor reference_probs;
  torch::Tensor warmup_input;
  try {
    impl->original = torch::jit::load(path, device);
    impl->original.eval();
    for (const std::string& method :
         {meta.grad_cam().features_method(), meta.grad_cam().head_method()}) {
      if (!impl->original.find_method(method)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": TorchScript module has no method '", method,
            "' named in grad_cam (export it with @torch.jit.export)"));
      }
    }
    warmup_input = WarmupInput(std::max(1, std::min(options.max_batch_size, 4)), size, 1234)
                       .to(device);
    torch::NoGradGuard no_grad;
    torch::Tensor logits = impl->original.forward({warmup_input}).toTensor();
    if (logits.dim() != 2 || logits.size(0) != warmup_input.size(0) || logits.size(1) != classes) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": model outputs logits of shape ", c10::str(logits.sizes()), " but model.json has ",
          classes, " labels (expected [N, ", classes, "])"));
    }
    torch::Tensor activation =
        impl->original.get_method(meta.grad_cam().features_method())({warmup_input}).toTensor();
    torch::Tensor head_logits =
        impl->original.get_method(meta.grad_cam().head_method())({activation}).toTensor();
    if (activation.dim() != 4 || !head_logits.sizes().equals(logits.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": features() must return N x C x h x w and head(features(x)) the logits; got ",
          c10::str(activation.sizes()), " and ", c10::str(head_logits.sizes())));
    }
    reference_probs = torch::softmax(logits.to(torch::kFloat32), 1).cpu();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot load TorchScript model: ",
                                                   e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot load TorchScript model: ", e.what()));
  }
  report.load_seconds = SecondsSince(load_start);

  const auto warmup_start = std::chrono::steady_clock::now();
  impl->serving = impl->original;
  if (options.optimize) {
    try {
      const std::string& features_method = meta.grad_cam().features_method();
      torch::jit::Module frozen = torch::jit::freeze(
          impl->original.clone(), std::vector<std::string>{features_method});
      torch::jit::Module optimized = torch::jit::optimize_for_inference(frozen, {features_method});
      double max_diff = 0;
      double features_diff = 0;
      {
        c10::InferenceMode inference;
        // Two passes: the profiling executor rewrites the graph after its first runs.
        for (int i = 0; i < 2; ++i) {
          torch::Tensor probs =
              torch::softmax(optimized.forward({warmup_input}).toTensor().to(torch::kFloat32), 1).cpu();
          max_diff = std::max(max_diff, (probs - reference_probs).abs().max().item<double>());
        }
        // Explain runs the optimised backbone too: its activations must agree as well.
        torch::Tensor fast = optimized.get_method(features_method)({warmup_input}).toTensor();
        torch::Tensor slow;
        {
          torch::NoGradGuard no_grad;
          slow = impl->original.get_method(features_method)({warmup_input}).toTensor();
        }
        const double scale = std::max(1.0, slow.abs().max().item<double>());
        features_diff = (fast.to(torch::kFloat32) - slow).abs().max().item<double>() / scale;
      }
      report.optimized_max_abs_diff = max_diff;
      if (max_diff <= 1e-4 && features_diff <= 1e-4) {
        impl->serving = optimized;
        report.optimized = true;
      } else {
        report.optimize_note = absl::StrCat("optimised outputs differ by ", max_diff,
                                            " (probabilities) and ", features_diff,
                                            " (relative, activations); limit 1e-4");
      }
    } catch (const std::exception& e) {
      report.optimize_note = absl::StrCat("optimisation failed: ", e.what());
    }
  } else {
    report.optimize_note = "disabled by flag";
  }
  try {
    c10::InferenceMode inference;
    std::vector<int> batch_sizes = {1};
    if (options.max_batch_size > 1) batch_sizes.push_back(options.max_batch_size);
    for (int batch : batch_sizes) {
      torch::Tensor input = WarmupInput(batch, size, 99).to(device);
      for (int i = 0; i < std::max(1, options.warmup_iterations); ++i) {
        impl->serving.forward({input});
      }
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": warm-up forward failed: ", e.what()));
  }
  report.warmup_seconds = SecondsSince(warmup_start);

  std::unique_ptr<Model> model(new Model(std::move(options.package), std::move(impl)));
  model->device_name_ = device.str();
  model->load_report_ = report;
  return model;
}

absl::Status Model::Classify(absl::Span<const float> inputs, int batch_size,
                             absl::Span<float> probabilities) const {
  if (batch_size <= 0 || static_cast<int64_t>(inputs.size()) != batch_size * input_elements() ||
      static_cast<int64_t>(probabilities.size()) != static_cast<int64_t>(batch_size) * num_classes()) {
    return absl::InvalidArgumentError(absl::StrCat("Classify: size mismatch for batch of ", batch_size));
  }
  try {
    c10::InferenceMode inference;
    const int64_t size = input_size();
    // from_blob does not copy; the tensor only lives for this call.
    torch::Tensor input = torch::from_blob(const_cast<float*>(inputs.data()),
                                           {batch_size, 3, size, size}, torch::kFloat32);
    if (impl_->device.is_cuda()) input = input.to(impl_->device, /*non_blocking=*/false);
    torch::Tensor probs = torch::softmax(impl_->serving.forward({input}).toTensor().to(torch::kFloat32), 1)
                              .to(torch::kCPU)
                              .contiguous();
    std::copy_n(probs.data_ptr<float>(), probabilities.size(), probabilities.data());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CamResult>> Model::Explain(absl::Span<const float> inputs,
                                                      absl::Span<const CamRequest> requests,
                                                      ExplainTiming* timing) const {
  const int batch = static_cast<int>(requests.size());
  if (batch == 0 || static_cast<int64_t>(inputs.size()) != batch * input_elements()) {
    return absl::InvalidArgumentError(absl::StrCat("Explain: size mismatch for batch of ", batch));
  }
  for (const CamRequest& r : requests) {
    if (r.target_class < -1 || r.target_class >= num_classes()) {
      return absl::InvalidArgumentError(absl::StrCat("class index must be in 0..", num_classes() - 1,
                                                     ", got ", r.target_class));
    }
  }
  std::vector<CamResult> results(static_cast<size_t>(batch));
  try {
    const int64_t size = input_size();
    torch::Tensor input = torch::from_blob(const_cast<float*>(inputs.data()),
                                           {batch, 3, size, size}, torch::kFloat32);
    if (impl_->device.is_cuda()) input = input.to(impl_->device);
    const auto backbone_start = std::chrono::steady_clock::now();
    torch::Tensor activation;
    {
      // Not InferenceMode: its tensors could not require grad below.
      torch::NoGradGuard no_grad;
      activation = impl_->serving.get_method(impl_->features_method)({input}).toTensor();
    }
    const auto cam_start = std::chrono::steady_clock::now();
    activation = activation.detach().to(torch::kFloat32).requires_grad_(true);
    torch::Tensor logits = impl_->original.get_method(impl_->head_method)({activation}).toTensor();
    torch::Tensor probs = torch::softmax(logits.detach().to(torch::kFloat32), 1).cpu().contiguous();
    std::vector<int64_t> targets(static_cast<size_t>(batch));
    for (int i = 0; i < batch; ++i) {
      targets[i] = requests[i].target_class >= 0 ? requests[i].target_class
                                                 : probs[i].argmax().item<int64_t>();
    }
    torch::Tensor target_index =
        torch::tensor(targets, torch::kInt64).to(logits.device()).unsqueeze(1);
    // Each image's score depends only on its own activation, so one backward pass of the summed
    // scores yields every image's gradient.
    torch::Tensor score = logits.gather(1, target_index).sum();
    torch::Tensor grads = torch::autograd::grad({score}, {activation})[0];

    torch::NoGradGuard no_grad;
    torch::Tensor a = activation.detach();
    torch::Tensor g = grads;
    torch::Tensor cams = torch::empty({batch, a.size(2), a.size(3)}, a.options());
    for (int i = 0; i < batch; ++i) {
      torch::Tensor ai = a[i];  // C x h x w
      torch::Tensor gi = g[i];
      torch::Tensor cam;
      switch (requests[i].method) {
        case CamMethod::kGradCam:
          cam = (gi.mean({1, 2}, /*keepdim=*/true) * ai).sum(0);
          break;
        case CamMethod::kGradCamPlusPlus: {
          // With an exponential score, higher derivatives are powers of the first (paper, eq. 19).
          torch::Tensor g2 = gi.pow(2);
          torch::Tensor g3 = g2 * gi;
          torch::Tensor activation_sums = ai.sum({1, 2}, /*keepdim=*/true);
          torch::Tensor alpha = g2 / (2 * g2 + activation_sums * g3 + 1e-7);
          alpha = torch::where(gi != 0, alpha, torch::zeros_like(alpha));
          torch::Tensor weights = (alpha * torch::relu(gi)).sum({1, 2}, /*keepdim=*/true);
          cam = (weights * ai).sum(0);
          break;
        }
        case CamMethod::kHiResCam:
          cam = (gi * ai).sum(0);
          break;
        case CamMethod::kLayerCam:
          cam = (torch::relu(gi) * ai).sum(0);
          break;
      }
      cam = torch::relu(cam);
      // Epsilon as a floor on the range (not added to it) keeps the result scale-invariant.
      cam = (cam - cam.min()) / torch::clamp_min(cam.max() - cam.min(), kCamEpsilon);
      cams[i] = cam;
    }
    cams = cams.cpu().contiguous();
    if (timing != nullptr) {
      const auto end = std::chrono::steady_clock::now();
      timing->backbone_us =
          std::chrono::duration_cast<std::chrono::microseconds>(cam_start - backbone_start).count();
      timing->cam_us = std::chrono::duration_cast<std::chrono::microseconds>(end - cam_start).count();
    }
    for (int i = 0; i < batch; ++i) {
      CamResult& r = results[i];
      r.target_class = static_cast<int>(targets[i]);
      r.map_height = static_cast<int>(cams.size(1));
      r.map_width = static_cast<int>(cams.size(2));
      const float* map = cams[i].data_ptr<float>();
      r.map.assign(map, map + r.map_height * r.map_width);
      const float* p = probs[i].data_ptr<float>();
      r.probabilities.assign(p, p + num_classes());
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("explain failed: ", e.what()));
  }
  return results;
}

}  // namespace cropshield::engine
