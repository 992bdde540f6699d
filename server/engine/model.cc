#include "server/engine/model.h"

#include <malloc.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/utils.h>
#include <torch/version.h>

// CUDA builds of libtorch install a generated c10/cuda/impl/cuda_cmake_macros.h; CPU-only builds
// (Debian's libtorch) ship the other c10/cuda headers but neither it nor libc10_cuda.
#if defined(__has_include)
#if __has_include(<c10/cuda/impl/cuda_cmake_macros.h>) && __has_include(<cuda_runtime_api.h>)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define CROPSHIELD_HAVE_CUDA 1
#endif
#endif

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <map>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
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

// Deterministic inputs roughly distributed like normalised photos.
torch::Tensor WarmupInput(int batch, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(batch) * 3 * size * size);
  for (float& v : values) v = normal(rng);
  return torch::from_blob(values.data(), {batch, 3, size, size}, torch::kFloat32).clone();
}

constexpr double kCamEpsilon = 1e-12;

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

}  // namespace

struct Model::Impl {
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;  // of the serving module's inputs and weights
  bool channels_last = false;

  // Pinned host buffers for asynchronous host-to-device copies, reused across calls. A pool owned
  // by the model (not thread_local tensors, whose destruction at thread exit raced libtorch's own
  // thread-local state in CUDA builds).
  mutable absl::Mutex pinned_mu;
  mutable std::vector<torch::Tensor> pinned_free ABSL_GUARDED_BY(pinned_mu);

  // Holds a pinned buffer until the call that staged its input has synchronised with the device.
  class PinnedLease {
   public:
    PinnedLease(const Impl* impl, torch::Tensor buffer) : impl_(impl), buffer_(std::move(buffer)) {}
    PinnedLease(PinnedLease&&) = default;
    ~PinnedLease() {
      if (impl_ != nullptr && buffer_.defined()) {
        absl::MutexLock lock(&impl_->pinned_mu);
        impl_->pinned_free.push_back(std::move(buffer_));
      }
    }

   private:
    const Impl* impl_;
    torch::Tensor buffer_;
  };

  // Host images (one span of input_elements() floats each) -> device fp32 NCHW tensor. On CUDA
  // each image is copied once, straight into a pinned buffer, so the upload is asynchronous; the
  // lease must outlive the first device synchronisation. On CPU images already back to back are
  // used in place.
  torch::Tensor HostToDevice(ImageSpans images, int64_t size,
                             std::optional<PinnedLease>* lease) const {
    const auto batch = static_cast<int64_t>(images.size());
    const int64_t elements = 3 * size * size;
    auto back_to_back = [&] {
      for (int64_t i = 1; i < batch; ++i) {
        if (images[i].data() != images[0].data() + i * elements) return false;
      }
      return true;
    };
    if (!device.is_cuda() && back_to_back()) {
      return torch::from_blob(const_cast<float*>(images[0].data()), {batch, 3, size, size},
                              torch::kFloat32);
    }
    torch::Tensor buffer;
    if (device.is_cuda()) {
      absl::MutexLock lock(&pinned_mu);
      for (size_t i = 0; i < pinned_free.size(); ++i) {
        if (pinned_free[i].numel() >= batch * elements) {
          buffer = std::move(pinned_free[i]);
          pinned_free.erase(pinned_free.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      }
    }
    if (!buffer.defined()) {
      // A normal tensor, not an inference tensor: Classify (InferenceMode) and Explain (autograd)
      // share the pool, and an inference tensor cannot be written outside InferenceMode.
      c10::InferenceMode normal_tensor(/*enabled=*/false);
      buffer = torch::empty(
          {batch * elements},
          torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(device.is_cuda()));
    }
    float* out = buffer.data_ptr<float>();
    for (int64_t i = 0; i < batch; ++i) std::copy_n(images[i].data(), elements, out + i * elements);
    torch::Tensor host = buffer.narrow(0, 0, batch * elements).view({batch, 3, size, size});
    if (!device.is_cuda()) return host;
    lease->emplace(this, buffer);
    return host.to(device, /*non_blocking=*/true);
  }
  // Batch sizes warmed up at load (CUDA only; ascending). cuDNN autotunes every new input shape on
  // first use (hundreds of ms), so batches are padded up to the next of these sizes.
  std::vector<int64_t> warmed_batches;
  int64_t PaddedBatch(int64_t batch) const {
    for (int64_t warmed : warmed_batches) {
      if (warmed >= batch) return warmed;
    }
    return batch;
  }
  // Device fp32 NCHW [batch] -> `padded` images in the serving precision and memory format, zero
  // images after the real ones; written into `into` when given (a CUDA graph's fixed input).
  torch::Tensor IntoServingLayout(const torch::Tensor& input, int64_t padded,
                                  torch::Tensor into = {}) const {
    const int64_t batch = input.size(0);
    if (!into.defined()) {
      if (padded == batch) return PrepareInput(input);
      into = torch::empty(
          {padded, input.size(1), input.size(2), input.size(3)},
          input.options().dtype(dtype).memory_format(channels_last ? at::MemoryFormat::ChannelsLast
                                                                   : at::MemoryFormat::Contiguous));
    }
    into.narrow(0, 0, batch).copy_(input);
    if (padded > batch) into.narrow(0, batch, padded - batch).zero_();
    return into;
  }
  // Device fp32 NCHW -> what the serving module takes (precision, memory format).
  torch::Tensor PrepareInput(torch::Tensor input) const {
    if (dtype != torch::kFloat32) input = input.to(dtype);
    if (channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
    return input;
  }
  std::string features_method;
  std::string head_method;
  // The module Predict runs: the frozen + optimised one when it passed verification.
  // TorchScript methods are not const but are safe to call concurrently.
  mutable torch::jit::Module serving;
  // The unfrozen module with its exported features/head methods (for Grad-CAM).
  mutable torch::jit::Module original;

#ifdef CROPSHIELD_HAVE_CUDA
  // Predict's forward + softmax for one padded batch size, recorded once as a CUDA graph: a replay
  // launches every kernel at once instead of one by one from the TorchScript interpreter. Its input
  // and output tensors are fixed, so a call holds `mu` from filling static_input until it has
  // copied static_probs out.
  struct GraphSlot {
    absl::Mutex mu;
    at::cuda::CUDAGraph graph;
    torch::Tensor static_input;
    torch::Tensor static_probs;
  };
  // By padded batch size; filled in Create only, read-only afterwards.
  std::map<int64_t, std::unique_ptr<GraphSlot>> graphs;

  void CaptureGraphs(int64_t size) {
    c10::InferenceMode inference;
    for (int64_t batch : warmed_batches) {
      auto slot = std::make_unique<GraphSlot>();
      slot->static_input =
          PrepareInput(WarmupInput(static_cast<int>(batch), static_cast<int>(size), 7).to(device));
      // Captured on a side stream (capture cannot use the default stream); ThreadLocal mode, so
      // that a model still serving on other threads during a hot reload is not disturbed.
      c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool(false, device.index());
      stream.synchronize();
      torch::cuda::synchronize(device.index());
      {
        c10::cuda::CUDAStreamGuard on_side_stream(stream);
        for (int i = 0; i < 2; ++i) serving.forward({slot->static_input});
        stream.synchronize();
        CaptureInto(*slot, stream);
        slot->graph.replay();
        torch::Tensor eager =
            torch::softmax(serving.forward({slot->static_input}).toTensor().to(torch::kFloat32), 1);
        const double diff = (slot->static_probs - eager).abs().max().item<double>();
        if (diff > 1e-3) {
          throw std::runtime_error(
              absl::StrCat("graph of batch ", batch, " differs from the eager forward by ", diff));
        }
      }
      stream.synchronize();
      graphs[batch] = std::move(slot);
    }
  }

  // Records Predict's forward + softmax into `slot` on `stream` (the current stream). A forward
  // that cannot be captured (it reads a device value on the host, say) throws inside the capture;
  // the capture is then ended and its memory pool released before the exception goes on: otherwise
  // the stream stays capturing and the caching allocator keeps routing this stream's allocations
  // to the pool of a graph that no longer exists.
  void CaptureInto(GraphSlot& slot, c10::cuda::CUDAStream stream) {
    const at::cuda::MempoolId_t pool = at::cuda::graph_pool_handle();
#if TORCH_VERSION_MAJOR >= 2
    slot.graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
#else
    slot.graph.capture_begin(pool);  // libtorch 1.x: global capture mode only
#endif
    try {
      torch::Tensor logits = serving.forward({slot.static_input}).toTensor();
      slot.static_probs = torch::softmax(logits.to(torch::kFloat32), 1);
    } catch (...) {
      AbortCapture(stream, pool);
      throw;
    }
    slot.graph.capture_end();
  }

  void AbortCapture(c10::cuda::CUDAStream stream, at::cuda::MempoolId_t pool) {
    cudaGraph_t partial = nullptr;
    (void)cudaStreamEndCapture(stream.stream(), &partial);  // fails for an invalidated capture
    if (partial != nullptr) (void)cudaGraphDestroy(partial);
    (void)cudaGetLastError();  // the capture's error is not sticky: clear it
#if TORCH_VERSION_MAJOR >= 2
    c10::cuda::CUDACachingAllocator::endAllocateToPool(device.index(), pool);
    c10::cuda::CUDACachingAllocator::releasePool(device.index(), pool);
#endif
  }

  // Classify through the graph of `padded`; false when there is none (the caller runs eagerly).
  bool ReplayGraph(const torch::Tensor& input, int64_t padded,
                   absl::Span<float> probabilities) const {
    auto it = graphs.find(padded);
    if (it == graphs.end()) return false;
    GraphSlot& slot = *it->second;
    absl::MutexLock lock(&slot.mu);
    IntoServingLayout(input, padded, slot.static_input);
    slot.graph.replay();
    torch::Tensor probs = slot.static_probs.narrow(0, 0, input.size(0)).to(torch::kCPU);
    std::copy_n(probs.data_ptr<float>(), probabilities.size(), probabilities.data());
    return true;
  }
#endif
};

Model::Model(ModelPackage package, std::unique_ptr<Impl> impl)
    : package_(std::move(package)), impl_(std::move(impl)) {}

Model::~Model() = default;

void ConfigureTorchRuntime(int intra_op_threads, int malloc_arenas) {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
  if (malloc_arenas <= 0) {
    malloc_arenas = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  mallopt(M_ARENA_MAX, malloc_arenas);
  if (intra_op_threads > 0) torch::set_num_threads(intra_op_threads);
  try {
    torch::set_num_interop_threads(1);
  } catch (const std::exception&) {
    // Already set or already used: keep what is there.
  }
}

bool DeviceIsCuda(const std::string& spec) {
  absl::StatusOr<torch::Device> device = ParseDevice(spec);
  return device.ok() && device->is_cuda();
}

void ReleaseFreeMemory() { malloc_trim(0); }

bool CudaAvailable() {
  try {
    return torch::cuda::is_available();
  } catch (const std::exception&) {
    return false;
  }
}

std::vector<GpuMemoryStats> CudaMemoryStats() {
  std::vector<GpuMemoryStats> result;
#ifdef CROPSHIELD_HAVE_CUDA
  if (!CudaAvailable()) return result;
  const int devices = static_cast<int>(torch::cuda::device_count());
  for (int device = 0; device < devices; ++device) {
    try {
      const auto stats =
          c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
      // Index 0 is StatType::AGGREGATE (small and large pools together) in every libtorch
      // since 1.x.
      GpuMemoryStats entry;
      entry.device = device;
      entry.allocated_bytes = stats.allocated_bytes[0].current;
      entry.reserved_bytes = stats.reserved_bytes[0].current;
      result.push_back(entry);
    } catch (const std::exception&) {
      // The allocator is not initialised for this device yet (nothing allocated there): skip it.
    }
  }
#endif
  return result;
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
  torch::Tensor reference_features;  // the original module's features of warmup_input
  torch::Tensor warmup_input;
  try {
    impl->original = torch::jit::load(path, device);
    impl->original.eval();
    for (const std::string& method :
         {meta.grad_cam().features_method(), meta.grad_cam().head_method()}) {
      if (!impl->original.find_method(method)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": TorchScript module has no method '", method,
                         "' named in grad_cam (export it with @torch.jit.export)"));
      }
    }
    // On CPU a forward costs about batch x single, so checks run at batch 1 there (start-up time).
    const int check_batch = device.is_cuda() ? std::max(1, std::min(options.max_batch_size, 4)) : 1;
    warmup_input = WarmupInput(check_batch, size, 1234).to(device);
    torch::NoGradGuard no_grad;
    torch::Tensor logits = impl->original.forward({warmup_input}).toTensor();
    if (logits.dim() != 2 || logits.size(0) != warmup_input.size(0) || logits.size(1) != classes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": model outputs logits of shape ", c10::str(logits.sizes()),
                       " but model.json has ", classes, " labels (expected [N, ", classes, "])"));
    }
    torch::Tensor activation =
        impl->original.get_method(meta.grad_cam().features_method())({warmup_input}).toTensor();
    reference_features = activation;
    torch::Tensor head_logits =
        impl->original.get_method(meta.grad_cam().head_method())({activation}).toTensor();
    if (activation.dim() != 4 || !head_logits.sizes().equals(logits.sizes())) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": features() must return N x C x h x w and head(features(x)) the logits; got ",
          c10::str(activation.sizes()), " and ", c10::str(head_logits.sizes())));
    }
    reference_probs = torch::softmax(logits.to(torch::kFloat32), 1).cpu();
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot load TorchScript model: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot load TorchScript model: ", e.what()));
  }
  report.load_seconds = SecondsSince(load_start);

  const auto warmup_start = std::chrono::steady_clock::now();
  CS_ASSIGN_OR_RETURN(impl->dtype, ParsePrecision(options.precision, device));
  impl->channels_last = device.is_cuda() && options.channels_last;
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const std::string& features_method = meta.grad_cam().features_method();
  const bool reduced = impl->dtype != torch::kFloat32;
  // The serving module: converted to the serving precision and memory format first (freezing turns
  // parameters into constants, so conversions must come before it), then frozen and optimised.
  try {
    torch::jit::Module candidate = impl->original.clone();
    if (reduced) candidate.to(impl->dtype);
    if (impl->channels_last) {
      for (torch::Tensor p : candidate.parameters()) {
        if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
      }
    }
    if (options.optimize) {
      torch::jit::Module frozen =
          torch::jit::freeze(candidate, std::vector<std::string>{features_method});
      candidate = torch::jit::optimize_for_inference(frozen, {features_method});
    }
    impl->serving = candidate;
  } catch (const std::exception& e) {
    if (reduced) {
      return absl::InternalError(
          absl::StrCat(path, ": cannot convert to ", options.precision, ": ", e.what()));
    }
    report.optimize_note = absl::StrCat("optimisation failed: ", e.what());
    impl->serving = impl->original;
  }
  bool serving_warmed = true;  // the module that serves ran the two verification passes
  // Verify the serving module against the fp32 original on the warm-up inputs.
  try {
    double max_diff = 0;
    double features_diff = 0;
    bool top1_agrees = true;
    {
      c10::InferenceMode inference;
      torch::Tensor input = impl->PrepareInput(warmup_input);
      // Two passes: the profiling executor rewrites the graph after its first runs.
      for (int i = 0; i < 2; ++i) {
        torch::Tensor probs =
            torch::softmax(impl->serving.forward({input}).toTensor().to(torch::kFloat32), 1).cpu();
        max_diff = std::max(max_diff, (probs - reference_probs).abs().max().item<double>());
        // A flipped top-1 only counts when fp32 itself separates the top two classes.
        torch::Tensor top2 = std::get<0>(reference_probs.topk(2, 1));
        torch::Tensor clear_winner = (top2.select(1, 0) - top2.select(1, 1)) > 1e-3;
        torch::Tensor same = probs.argmax(1) == reference_probs.argmax(1);
        top1_agrees = top1_agrees && (same | ~clear_winner).all().item<bool>();
      }
      torch::Tensor fast = impl->serving.get_method(features_method)({input}).toTensor();
      const torch::Tensor& slow = reference_features;
      const double scale = std::max(1.0, slow.abs().max().item<double>());
      features_diff = (fast.to(torch::kFloat32) - slow).abs().max().item<double>() / scale;
    }
    report.optimized_max_abs_diff = max_diff;
    if (reduced) {
      if (!top1_agrees) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": ", options.precision,
                         " changes the top-1 class on the warm-up inputs (largest "
                         "probability difference ",
                         max_diff, "); serve it in fp32"));
      }
      report.optimized = options.optimize;
    } else if (max_diff <= 1e-4 && features_diff <= 1e-4) {
      report.optimized = options.optimize && report.optimize_note.empty();
    } else {
      report.optimize_note =
          absl::StrCat("optimised outputs differ by ", max_diff, " (probabilities) and ",
                       features_diff, " (relative, activations); limit 1e-4");
      impl->serving = impl->original;
      impl->channels_last = false;
      serving_warmed = false;
    }
    if (!options.optimize) report.optimize_note = "disabled by flag";
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(path, ": verifying the serving module failed: ", e.what()));
  }
  try {
    c10::InferenceMode inference;
    // cuDNN picks its algorithms per shape: on CUDA warm every batch size the batcher can form.
    // On CPU there is nothing to autotune; batch 1 warms the executor without holding the memory
    // of a full batch (glibc keeps what it was given: see ConfigureTorchRuntime).
    std::vector<int> batch_sizes = {1};
    for (int b = 2; b < options.max_batch_size && device.is_cuda(); b *= 2)
      batch_sizes.push_back(b);
    if (options.max_batch_size > 1 && device.is_cuda())
      batch_sizes.push_back(options.max_batch_size);
    if (device.is_cuda()) impl->warmed_batches.assign(batch_sizes.begin(), batch_sizes.end());
    for (int batch : batch_sizes) {
      torch::Tensor input = impl->PrepareInput(WarmupInput(batch, size, 99).to(device));
      // On CPU the two verification passes above already ran the serving module at batch 1.
      const int done = !device.is_cuda() && batch == 1 && serving_warmed ? 2 : 0;
      for (int i = done; i < std::max(1, options.warmup_iterations); ++i) {
        impl->serving.forward({input});
      }
    }
    if (device.is_cuda()) torch::cuda::synchronize();
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(path, ": warm-up forward failed: ", e.what()));
  }
  if (options.cuda_graphs && device.is_cuda()) {
#ifdef CROPSHIELD_HAVE_CUDA
    try {
      impl->CaptureGraphs(size);
      report.cuda_graphs = static_cast<int>(impl->graphs.size());
    } catch (const std::exception& e) {
      impl->graphs.clear();
      report.cuda_graphs_note = absl::StrCat("CUDA graphs not used: ", e.what());
    }
#else
    report.cuda_graphs_note = "CUDA graphs not used: libtorch headers without CUDA";
#endif
  }
  report.warmup_seconds = SecondsSince(warmup_start);

  std::unique_ptr<Model> model(new Model(std::move(options.package), std::move(impl)));
  model->device_name_ = device.str();
  model->precision_ = options.precision;
  model->load_report_ = report;
  return model;
}

namespace {

std::vector<absl::Span<const float>> SplitImages(absl::Span<const float> inputs, int64_t batch,
                                                 int64_t elements) {
  std::vector<absl::Span<const float>> images;
  images.reserve(static_cast<size_t>(std::max<int64_t>(0, batch)));
  for (int64_t i = 0; i < batch; ++i) {
    images.push_back(
        inputs.subspan(static_cast<size_t>(i * elements), static_cast<size_t>(elements)));
  }
  return images;
}

absl::Status CheckImages(ImageSpans images, int64_t elements, const char* what) {
  if (images.empty()) return absl::InvalidArgumentError(absl::StrCat(what, ": empty batch"));
  for (const absl::Span<const float>& image : images) {
    if (static_cast<int64_t>(image.size()) != elements) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": an image has ", image.size(), " floats, expected ", elements));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Model::Classify(absl::Span<const float> inputs, int batch_size,
                             absl::Span<float> probabilities) const {
  if (batch_size <= 0 || static_cast<int64_t>(inputs.size()) != batch_size * input_elements()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Classify: size mismatch for batch of ", batch_size));
  }
  return Classify(SplitImages(inputs, batch_size, input_elements()), probabilities);
}

absl::Status Model::Classify(ImageSpans images, absl::Span<float> probabilities) const {
  CS_RETURN_IF_ERROR(CheckImages(images, input_elements(), "Classify"));
  const auto batch = static_cast<int64_t>(images.size());
  if (static_cast<int64_t>(probabilities.size()) != batch * num_classes()) {
    return absl::InvalidArgumentError(absl::StrCat("Classify: room for ", probabilities.size(),
                                                   " probabilities, expected ",
                                                   batch * num_classes()));
  }
  try {
    c10::InferenceMode inference;
    std::optional<Impl::PinnedLease> lease;
    torch::Tensor input = impl_->HostToDevice(images, input_size(), &lease);
    const int64_t padded = impl_->PaddedBatch(batch);
#ifdef CROPSHIELD_HAVE_CUDA
    if (impl_->ReplayGraph(input, padded, probabilities)) return absl::OkStatus();
#endif
    torch::Tensor logits = impl_->serving.forward({impl_->IntoServingLayout(input, padded)})
                               .toTensor()
                               .narrow(0, 0, batch);
    torch::Tensor probs =
        torch::softmax(logits.to(torch::kFloat32), 1).to(torch::kCPU).contiguous();
    std::copy_n(probs.data_ptr<float>(), probabilities.size(), probabilities.data());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("inference failed: ", e.what()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CamResult>> Model::Explain(absl::Span<const float> inputs,
                                                      absl::Span<const CamRequest> requests,
                                                      ExplainTiming* timing) const {
  const auto batch = static_cast<int64_t>(requests.size());
  if (batch == 0 || static_cast<int64_t>(inputs.size()) != batch * input_elements()) {
    return absl::InvalidArgumentError(absl::StrCat("Explain: size mismatch for batch of ", batch));
  }
  return Explain(SplitImages(inputs, batch, input_elements()), requests, timing);
}

absl::StatusOr<std::vector<CamResult>> Model::Explain(ImageSpans images,
                                                      absl::Span<const CamRequest> requests,
                                                      ExplainTiming* timing) const {
  CS_RETURN_IF_ERROR(CheckImages(images, input_elements(), "Explain"));
  const int batch = static_cast<int>(requests.size());
  if (static_cast<size_t>(batch) != images.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Explain: ", images.size(), " images but ", batch, " requests"));
  }
  for (const CamRequest& r : requests) {
    if (r.target_class < -1 || r.target_class >= num_classes()) {
      return absl::InvalidArgumentError(
          absl::StrCat("class index must be in 0..", num_classes() - 1, ", got ", r.target_class));
    }
  }
  std::vector<CamResult> results(static_cast<size_t>(batch));
  try {
    std::optional<Impl::PinnedLease> lease;
    torch::Tensor input = impl_->IntoServingLayout(
        impl_->HostToDevice(images, input_size(), &lease), impl_->PaddedBatch(batch));
    const auto backbone_start = std::chrono::steady_clock::now();
    torch::Tensor activation;
    {
      // Not InferenceMode: its tensors could not require grad below.
      torch::NoGradGuard no_grad;
      activation =
          impl_->serving.get_method(impl_->features_method)({input}).toTensor().narrow(0, 0, batch);
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
      timing->cam_us =
          std::chrono::duration_cast<std::chrono::microseconds>(end - cam_start).count();
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
