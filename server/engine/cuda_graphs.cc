// Predict's forward recorded as CUDA graphs: captured in Create's last step, replayed by
// Classify. The capture and replay code compiles only against a CUDA build of libtorch
// (CROPSHIELD_HAVE_CUDA, see model_impl.h); elsewhere Create notes that graphs are not used.
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/engine/model_impl.h"

// The capture code picks its API by libtorch major version: a missing definition would silently
// select the 1.x branches.
#ifndef TORCH_VERSION_MAJOR
#error "TORCH_VERSION_MAJOR is not defined: <torch/version.h> is needed"
#endif

namespace cropshield::engine {

void Model::Impl::CaptureCudaGraphs(const ModelOptions& options, LoadReport* report) {
  if (!options.cuda_graphs || !device.is_cuda()) return;
#ifdef CROPSHIELD_HAVE_CUDA
  try {
    CaptureGraphs(options.package.metadata.preprocessing().input_size());
    report->cuda_graphs = static_cast<int>(graphs.size());
  } catch (const std::exception& e) {
    graphs.clear();
    report->cuda_graphs_note = absl::StrCat("CUDA graphs not used: ", e.what());
  }
#else
  report->cuda_graphs_note = "CUDA graphs not used: libtorch headers without CUDA";
#endif
}

#ifdef CROPSHIELD_HAVE_CUDA

void Model::Impl::CaptureGraphs(int64_t size) {
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
void Model::Impl::CaptureInto(GraphSlot& slot, c10::cuda::CUDAStream stream) {
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

void Model::Impl::AbortCapture(c10::cuda::CUDAStream stream, at::cuda::MempoolId_t pool) {
  cudaGraph_t partial = nullptr;
  (void)cudaStreamEndCapture(stream.stream(), &partial);  // fails for an invalidated capture
  if (partial != nullptr) (void)cudaGraphDestroy(partial);
  (void)cudaGetLastError();  // the capture's error is not sticky: clear it
#if TORCH_VERSION_MAJOR >= 2
  c10::cuda::CUDACachingAllocator::endAllocateToPool(device.index(), pool);
  c10::cuda::CUDACachingAllocator::releasePool(device.index(), pool);
#endif
}

bool Model::Impl::ReplayGraph(const torch::Tensor& input, int64_t padded,
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

#endif  // CROPSHIELD_HAVE_CUDA

}  // namespace cropshield::engine
