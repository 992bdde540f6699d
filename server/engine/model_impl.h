// Model::Impl, the torch state behind the torch-free Model of model.h. Internal to server/engine,
// shared by its sources: model.cc (input staging, Classify, Explain), model_create.cc (Create and
// its steps) and cuda_graphs.cc (CUDA graph capture and replay).
//
// Thread-safety: Create's steps run on one thread before the model is handed out; afterwards only
// the const members are called, from any number of threads (see model.h).
#ifndef CROPSHIELD_SERVER_ENGINE_MODEL_IMPL_H_
#define CROPSHIELD_SERVER_ENGINE_MODEL_IMPL_H_

#include <torch/script.h>

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

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "server/engine/model.h"

namespace cropshield::engine {

// "auto", "cpu", "cuda" or "cuda:N" -> a torch device (FAILED_PRECONDITION for CUDA without one).
absl::StatusOr<torch::Device> ParseDevice(const std::string& spec);

// Sets the process-wide quantized engine ("onednn", "qnnpack", "fbgemm") before a quantized module
// is loaded; FAILED_PRECONDITION naming the available ones when this libtorch lacks it.
absl::Status SelectQuantizedEngine(const std::string& engine);

// Deterministic inputs roughly distributed like normalised photos.
torch::Tensor WarmupInput(int batch, int size, uint32_t seed);

// What the fp32 original computes on the load checks' inputs: the serving module is verified
// against it.
struct ReferenceOutputs {
  torch::Tensor input;          // device fp32 NCHW
  torch::Tensor probabilities;  // softmax of the logits, on the CPU
  torch::Tensor features;       // the features method's activation
};

// How far the serving module is from the fp32 original on ReferenceOutputs::input.
struct ServingDiff {
  double max_probability_diff = 0;
  double relative_features_diff = 0;  // largest difference / max(1, largest activation)
  bool top1_agrees = true;            // wherever fp32 has a clear winner
};

struct Model::Impl {
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;  // of the serving module's inputs and weights
  bool channels_last = false;

  // --- Create's steps, in order (model_create.cc; the last in cuda_graphs.cc). Each returns the
  // error Create returns; torch exceptions are caught inside them.

  // Loads the original module and checks it against the package: its grad_cam methods exist and
  // the logits, features and head(features) have the expected shapes.
  absl::StatusOr<ReferenceOutputs> LoadAndCheck(const ModelOptions& options);
  // Converts the original to the serving precision and memory format, then freezes and optimises
  // it; in fp32 a module that cannot be optimised serves unoptimised (noted in the report).
  absl::Status BuildServingModule(const ModelOptions& options, LoadReport* report);
  // Checks the serving module against the original: in reduced precision the top-1 must agree, in
  // fp32 an optimised module that differs is replaced by the original. True when the module that
  // now serves ran the two verification passes (it is then warm at the checks' batch size).
  absl::StatusOr<bool> VerifyServingModule(const ModelOptions& options,
                                           const ReferenceOutputs& reference, LoadReport* report);
  ServingDiff CompareWithReference(const ReferenceOutputs& reference);  // throws torch errors
  // Runs the serving module at every batch size it will see (sets warmed_batches on CUDA).
  absl::Status WarmUp(const ModelOptions& options, bool serving_warmed);
  // When asked for on CUDA, records the graphs Classify replays; a failure only leaves Classify
  // eager and says why in the report.
  void CaptureCudaGraphs(const ModelOptions& options, LoadReport* report);

  // --- Input staging (model.cc).

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
                             std::optional<PinnedLease>* lease) const;
  // Batch sizes warmed up at load (CUDA only; ascending). cuDNN autotunes every new input shape on
  // first use (hundreds of ms), so batches are padded up to the next of these sizes.
  std::vector<int64_t> warmed_batches;
  int64_t PaddedBatch(int64_t batch) const;
  // Device fp32 NCHW [batch] -> `padded` images in the serving precision and memory format, zero
  // images after the real ones; written into `into` when given (a CUDA graph's fixed input).
  torch::Tensor IntoServingLayout(const torch::Tensor& input, int64_t padded,
                                  torch::Tensor into = {}) const;
  // Device fp32 NCHW -> what the serving module takes (precision, memory format).
  torch::Tensor PrepareInput(torch::Tensor input) const;

  // --- Modules.

  std::string features_method;
  std::string head_method;
  // The module Predict runs: the frozen + optimised one when it passed verification.
  // TorchScript methods are not const but are safe to call concurrently.
  mutable torch::jit::Module serving;
  // The unfrozen module with its exported features/head methods (for Grad-CAM).
  mutable torch::jit::Module original;

#ifdef CROPSHIELD_HAVE_CUDA
  // --- CUDA graphs (cuda_graphs.cc).

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

  // One graph per warmed batch size, each checked against the eager forward; throws on failure.
  void CaptureGraphs(int64_t size);
  void CaptureInto(GraphSlot& slot, c10::cuda::CUDAStream stream);
  void AbortCapture(c10::cuda::CUDAStream stream, at::cuda::MempoolId_t pool);
  // Classify through the graph of `padded`; false when there is none (the caller runs eagerly).
  bool ReplayGraph(const torch::Tensor& input, int64_t padded,
                   absl::Span<float> probabilities) const;
#endif
};

}  // namespace cropshield::engine

#endif  // CROPSHIELD_SERVER_ENGINE_MODEL_IMPL_H_
