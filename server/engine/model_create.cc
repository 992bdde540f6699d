// Model::Create and its steps: load and check, build the serving module, verify it against the
// original, warm it up (and, in cuda_graphs.cc, record CUDA graphs).
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/engine/model.h"
#include "server/engine/model_impl.h"

namespace cropshield::engine {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// "1.23" (seconds or percent) for the progress lines.
std::string Fixed(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", decimals, value);
  return text;
}

// Warm-up logs its progress at most this often (a long --warmup_iterations on a slow device
// would otherwise log nothing between "loading" and SERVING).
constexpr std::chrono::seconds kProgressInterval(5);

// Logs one named step of Model::Create when it starts and, from Done(), how long it took.
class LoadStep {
 public:
  LoadStep(const ModelOptions& options, absl::string_view step, absl::string_view detail = "")
      : prefix_(absl::StrCat("model ", options.package.metadata.name(), " version ",
                             options.package.metadata.version(), ": ", step)),
        start_(std::chrono::steady_clock::now()) {
    CS_LOG_INFO(prefix_, detail.empty() ? "" : " (", detail, detail.empty() ? "" : ")", "...");
  }
  void Done() const { CS_LOG_INFO(prefix_, " done in ", Fixed(SecondsSince(start_), 2), " s"); }

 private:
  const std::string prefix_;
  const std::chrono::steady_clock::time_point start_;
};

// Counts warm-up forward passes and logs "i/total" at most every kProgressInterval.
class WarmupProgress {
 public:
  explicit WarmupProgress(int64_t total)
      : total_(total), start_(std::chrono::steady_clock::now()), last_(start_) {}
  void Step() {
    ++done_;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < kProgressInterval) return;
    last_ = now;
    const double percent =
        100.0 * static_cast<double>(done_) / static_cast<double>(std::max<int64_t>(1, total_));
    CS_LOG_INFO("warm-up: ", done_, "/", total_, " forward passes (", Fixed(percent, 0),
                "%) after ", Fixed(SecondsSince(start_), 1), " s");
  }

 private:
  const int64_t total_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  int64_t done_ = 0;
};

absl::StatusOr<torch::ScalarType> ParsePrecision(const std::string& precision,
                                                 const torch::Device& device) {
  if (precision == "fp32") return torch::kFloat32;
  if (precision != "fp16" && precision != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown precision '", precision, "' (expected fp32, fp16 or bf16)"));
  }
  if (!device.is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--precision ", precision, " needs a CUDA device; serve fp32 on CPU"));
  }
  return precision == "fp16" ? torch::kFloat16 : torch::kBFloat16;
}

// cuDNN picks its algorithms per shape: on CUDA warm every batch size the batcher can form (1,
// powers of two, the largest). On CPU there is nothing to autotune; batch 1 warms the executor
// without holding the memory of a full batch (glibc keeps what it was given: see
// ConfigureTorchRuntime).
std::vector<int> WarmupBatchSizes(int max_batch_size, bool cuda) {
  std::vector<int> batch_sizes = {1};
  for (int b = 2; b < max_batch_size && cuda; b *= 2) batch_sizes.push_back(b);
  if (max_batch_size > 1 && cuda) batch_sizes.push_back(max_batch_size);
  return batch_sizes;
}

}  // namespace

absl::StatusOr<torch::Device> ParseDevice(const std::string& spec) {
  if (spec == "cpu") return torch::Device(torch::kCPU);
  if (spec == "auto") {
    return CudaAvailable() ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  }
  if (spec == "cuda" || absl::StartsWith(spec, "cuda:")) {
    if (!CudaAvailable()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--device ", spec, " asked for CUDA but none is available in this build/host"));
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

torch::Tensor WarmupInput(int batch, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(batch) * 3 * size * size);
  for (float& v : values) v = normal(rng);
  return torch::from_blob(values.data(), {batch, 3, size, size}, torch::kFloat32).clone();
}

absl::StatusOr<std::unique_ptr<Model>> Model::Create(ModelOptions options) {
  const auto load_start = std::chrono::steady_clock::now();
  auto impl = std::make_unique<Impl>();
  CS_ASSIGN_OR_RETURN(impl->device, ParseDevice(options.device));
  CS_RETURN_IF_ERROR(CheckQuantizedPackageDevice(options.package, impl->device.is_cuda()));
  if (options.package.metadata.has_quantization()) {
    // Quantized modules prepack their weights for the current engine when they are loaded.
    CS_RETURN_IF_ERROR(SelectQuantizedEngine(options.package.metadata.quantization().engine()));
  }
  LoadReport report;
  const LoadStep load(options, "load and check", impl->device.str());
  CS_ASSIGN_OR_RETURN(const ReferenceOutputs reference, impl->LoadAndCheck(options));
  load.Done();
  report.load_seconds = SecondsSince(load_start);

  const auto warmup_start = std::chrono::steady_clock::now();
  const LoadStep build(options, "build the serving module",
                       options.optimize ? "freeze and optimise" : "not optimised");
  CS_RETURN_IF_ERROR(impl->BuildServingModule(options, &report));
  build.Done();
  const LoadStep verify(options, "verify the serving module against the original");
  CS_ASSIGN_OR_RETURN(const bool serving_warmed,
                      impl->VerifyServingModule(options, reference, &report));
  verify.Done();
  CS_RETURN_IF_ERROR(impl->WarmUp(options, serving_warmed));
  if (impl->device.is_cuda() && options.cuda_graphs) {
    const LoadStep graphs(options, "capture CUDA graphs");
    impl->CaptureCudaGraphs(options, &report);
    graphs.Done();
  }
  report.warmup_seconds = SecondsSince(warmup_start);

  const std::string device_name = impl->device.str();
  std::unique_ptr<Model> model(new Model(std::move(options.package), std::move(impl)));
  model->device_name_ = device_name;
  // An INT8 package's layers run in int8 whatever --precision says (fp32, the only one on CPU).
  model->precision_ = model->package_.metadata.has_quantization()
                          ? model->package_.metadata.quantization().dtype()
                          : options.precision;
  model->load_report_ = report;
  return model;
}

absl::StatusOr<ReferenceOutputs> Model::Impl::LoadAndCheck(const ModelOptions& options) {
  const cropshield::v1::ModelMetadata& meta = options.package.metadata;
  const std::string& path = options.package.weights_path;
  const int classes = meta.labels_size();
  features_method = meta.grad_cam().features_method();
  head_method = meta.grad_cam().head_method();
  ReferenceOutputs reference;
  try {
    original = torch::jit::load(path, device);
    original.eval();
    for (const std::string& method : {features_method, head_method}) {
      if (!original.find_method(method)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": TorchScript module has no method '", method,
                         "' named in grad_cam (export it with @torch.jit.export)"));
      }
    }
    // On CPU a forward costs about batch x single, so checks run at batch 1 there (start-up time).
    const int check_batch = device.is_cuda() ? std::max(1, std::min(options.max_batch_size, 4)) : 1;
    reference.input = WarmupInput(check_batch, meta.preprocessing().input_size(), 1234).to(device);
    torch::NoGradGuard no_grad;
    torch::Tensor logits = original.forward({reference.input}).toTensor();
    if (logits.dim() != 2 || logits.size(0) != reference.input.size(0) ||
        logits.size(1) != classes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": model outputs logits of shape ", c10::str(logits.sizes()),
                       " but model.json has ", classes, " labels (expected [N, ", classes, "])"));
    }
    reference.features = original.get_method(features_method)({reference.input}).toTensor();
    torch::Tensor head_logits = original.get_method(head_method)({reference.features}).toTensor();
    if (reference.features.dim() != 4 || !head_logits.sizes().equals(logits.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": features() must return N x C x h x w and head(features(x)) the logits; got ",
          c10::str(reference.features.sizes()), " and ", c10::str(head_logits.sizes())));
    }
    reference.probabilities = torch::softmax(logits.to(torch::kFloat32), 1).cpu();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot load TorchScript model: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot load TorchScript model: ", e.what()));
  }
  return reference;
}

absl::Status Model::Impl::BuildServingModule(const ModelOptions& options, LoadReport* report) {
  CS_ASSIGN_OR_RETURN(dtype, ParsePrecision(options.precision, device));
  channels_last = device.is_cuda() && options.channels_last;
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const bool reduced = dtype != torch::kFloat32;
  // Converted to the serving precision and memory format first (freezing turns parameters into
  // constants, so conversions must come before it), then frozen and optimised.
  try {
    torch::jit::Module candidate = original.clone();
    if (reduced) candidate.to(dtype);
    if (channels_last) {
      for (torch::Tensor p : candidate.parameters()) {
        if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
      }
    }
    if (options.optimize) {
      torch::jit::Module frozen =
          torch::jit::freeze(candidate, std::vector<std::string>{features_method});
      candidate = torch::jit::optimize_for_inference(frozen, {features_method});
    }
    serving = candidate;
  } catch (const std::exception& e) {
    if (reduced) {
      return absl::InternalError(absl::StrCat(options.package.weights_path, ": cannot convert to ",
                                              options.precision, ": ", e.what()));
    }
    // fp32 can still serve: the original, unoptimised.
    report->optimize_note = absl::StrCat("optimisation failed: ", e.what());
    serving = original;
  }
  return absl::OkStatus();
}

ServingDiff Model::Impl::CompareWithReference(const ReferenceOutputs& reference) {
  ServingDiff diff;
  c10::InferenceMode inference;
  torch::Tensor input = PrepareInput(reference.input);
  const torch::Tensor& want = reference.probabilities;
  // Two passes: the profiling executor rewrites the graph after its first runs.
  for (int i = 0; i < 2; ++i) {
    torch::Tensor probs =
        torch::softmax(serving.forward({input}).toTensor().to(torch::kFloat32), 1).cpu();
    diff.max_probability_diff =
        std::max(diff.max_probability_diff, (probs - want).abs().max().item<double>());
    // A flipped top-1 only counts when fp32 itself separates the top two classes.
    torch::Tensor top2 = std::get<0>(want.topk(2, 1));
    torch::Tensor clear_winner = (top2.select(1, 0) - top2.select(1, 1)) > 1e-3;
    torch::Tensor same = probs.argmax(1) == want.argmax(1);
    diff.top1_agrees = diff.top1_agrees && (same | ~clear_winner).all().item<bool>();
  }
  torch::Tensor fast = serving.get_method(features_method)({input}).toTensor();
  const torch::Tensor& slow = reference.features;
  const double scale = std::max(1.0, slow.abs().max().item<double>());
  diff.relative_features_diff =
      (fast.to(torch::kFloat32) - slow).abs().max().item<double>() / scale;
  return diff;
}

absl::StatusOr<bool> Model::Impl::VerifyServingModule(const ModelOptions& options,
                                                      const ReferenceOutputs& reference,
                                                      LoadReport* report) {
  const std::string& path = options.package.weights_path;
  const bool reduced = dtype != torch::kFloat32;
  bool serving_warmed = true;
  try {
    const ServingDiff diff = CompareWithReference(reference);
    report->optimized_max_abs_diff = diff.max_probability_diff;
    if (reduced) {
      // Reduced precision always differs a little; only a changed answer refuses it.
      if (!diff.top1_agrees) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": ", options.precision,
                         " changes the top-1 class on the warm-up inputs (largest "
                         "probability difference ",
                         diff.max_probability_diff, "); serve it in fp32"));
      }
      report->optimized = options.optimize;
    } else if (diff.max_probability_diff <= 1e-4 && diff.relative_features_diff <= 1e-4) {
      report->optimized = options.optimize && report->optimize_note.empty();
    } else {
      report->optimize_note = absl::StrCat(
          "optimised outputs differ by ", diff.max_probability_diff, " (probabilities) and ",
          diff.relative_features_diff, " (relative, activations); limit 1e-4");
      serving = original;
      channels_last = false;
      serving_warmed = false;
    }
    if (!options.optimize) report->optimize_note = "disabled by flag";
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(path, ": verifying the serving module failed: ", e.what()));
  }
  return serving_warmed;
}

absl::Status Model::Impl::WarmUp(const ModelOptions& options, bool serving_warmed) {
  const int size = options.package.metadata.preprocessing().input_size();
  try {
    c10::InferenceMode inference;
    const std::vector<int> batch_sizes = WarmupBatchSizes(options.max_batch_size, device.is_cuda());
    if (device.is_cuda()) warmed_batches.assign(batch_sizes.begin(), batch_sizes.end());
    const int iterations = std::max(1, options.warmup_iterations);
    // On CPU the two verification passes already ran the serving module at batch 1.
    auto first_iteration = [&](int batch) {
      return !device.is_cuda() && batch == 1 && serving_warmed ? std::min(2, iterations) : 0;
    };
    int64_t total = 0;
    for (int batch : batch_sizes) total += iterations - first_iteration(batch);
    const LoadStep step(
        options, "warm-up",
        absl::StrCat(total, " forward passes at batch sizes ", absl::StrJoin(batch_sizes, ",")));
    WarmupProgress progress(total);
    for (int batch : batch_sizes) {
      torch::Tensor input = PrepareInput(WarmupInput(batch, size, 99).to(device));
      for (int i = first_iteration(batch); i < iterations; ++i) {
        serving.forward({input});
        progress.Step();
      }
    }
    if (device.is_cuda()) torch::cuda::synchronize();
    step.Done();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(options.package.weights_path, ": warm-up forward failed: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace cropshield::engine
