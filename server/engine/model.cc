// Model's serving side: input staging, Classify, Explain, and the process-wide torch settings.
// Create and its steps are in model_create.cc, the CUDA graphs in cuda_graphs.cc and the class
// activation map arithmetic in cam.cc.
#include "server/engine/model.h"

#include <malloc.h>
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/script.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "server/engine/cam.h"
#include "server/engine/model_impl.h"

namespace cropshield::engine {
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

absl::Status CheckCamRequests(absl::Span<const CamRequest> requests, size_t images,
                              int num_classes) {
  if (requests.size() != images) {
    return absl::InvalidArgumentError(
        absl::StrCat("Explain: ", images, " images but ", requests.size(), " requests"));
  }
  for (const CamRequest& r : requests) {
    if (r.target_class < -1 || r.target_class >= num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat("class index must be in 0..", num_classes - 1, ", got ", r.target_class));
    }
  }
  return absl::OkStatus();
}

// Each request's class: its own, or the top-1 of its image's probabilities (CPU, N x classes).
std::vector<int64_t> TargetClasses(absl::Span<const CamRequest> requests,
                                   const torch::Tensor& probs) {
  std::vector<int64_t> targets(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    targets[i] = requests[i].target_class >= 0 ? requests[i].target_class
                                               : probs[i].argmax().item<int64_t>();
  }
  return targets;
}

// The gradient of each image's target logit with respect to its activation (N x C x h x w).
torch::Tensor TargetScoreGradients(const torch::Tensor& logits, const std::vector<int64_t>& targets,
                                   const torch::Tensor& activation) {
  torch::Tensor target_index =
      torch::tensor(targets, torch::kInt64).to(logits.device()).unsqueeze(1);
  // Each image's score depends only on its own activation, so one backward pass of the summed
  // scores yields every image's gradient.
  torch::Tensor score = logits.gather(1, target_index).sum();
  return torch::autograd::grad({score}, {activation})[0];
}

// Maps (N x h x w) and probabilities (N x classes), both CPU and contiguous, into one result each.
std::vector<CamResult> ToCamResults(const std::vector<int64_t>& targets, const torch::Tensor& maps,
                                    const torch::Tensor& probs, int num_classes) {
  std::vector<CamResult> results(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    CamResult& r = results[i];
    r.target_class = static_cast<int>(targets[i]);
    r.map_height = static_cast<int>(maps.size(1));
    r.map_width = static_cast<int>(maps.size(2));
    const float* map = maps[i].data_ptr<float>();
    r.map.assign(map, map + r.map_height * r.map_width);
    const float* p = probs[i].data_ptr<float>();
    r.probabilities.assign(p, p + num_classes);
  }
  return results;
}

int64_t MicrosecondsBetween(std::chrono::steady_clock::time_point start,
                            std::chrono::steady_clock::time_point end) {
  return std::chrono::duration_cast<std::chrono::microseconds>(end - start).count();
}

}  // namespace

torch::Tensor Model::Impl::HostToDevice(ImageSpans images, int64_t size,
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
    buffer =
        torch::empty({batch * elements},
                     torch::TensorOptions().dtype(torch::kFloat32).pinned_memory(device.is_cuda()));
  }
  float* out = buffer.data_ptr<float>();
  for (int64_t i = 0; i < batch; ++i) std::copy_n(images[i].data(), elements, out + i * elements);
  torch::Tensor host = buffer.narrow(0, 0, batch * elements).view({batch, 3, size, size});
  if (!device.is_cuda()) return host;
  lease->emplace(this, buffer);
  return host.to(device, /*non_blocking=*/true);
}

int64_t Model::Impl::PaddedBatch(int64_t batch) const {
  for (int64_t warmed : warmed_batches) {
    if (warmed >= batch) return warmed;
  }
  return batch;
}

torch::Tensor Model::Impl::IntoServingLayout(const torch::Tensor& input, int64_t padded,
                                             torch::Tensor into) const {
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

torch::Tensor Model::Impl::PrepareInput(torch::Tensor input) const {
  if (dtype != torch::kFloat32) input = input.to(dtype);
  if (channels_last) input = input.contiguous(at::MemoryFormat::ChannelsLast);
  return input;
}

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

std::string ResolvedDeviceName(const std::string& spec) {
  try {
    absl::StatusOr<torch::Device> device = ParseDevice(spec);
    return device.ok() ? device->str() : spec;
  } catch (const std::exception&) {
    return spec;
  }
}

std::string TorchVersion() { return TORCH_VERSION; }

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
  CS_RETURN_IF_ERROR(CheckCamRequests(requests, images.size(), num_classes()));
  const int batch = static_cast<int>(requests.size());
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
    const std::vector<int64_t> targets = TargetClasses(requests, probs);
    torch::Tensor gradients = TargetScoreGradients(logits, targets, activation);

    torch::NoGradGuard no_grad;
    torch::Tensor maps =
        ClassActivationMaps(activation.detach(), gradients, requests).cpu().contiguous();
    if (timing != nullptr) {
      const auto end = std::chrono::steady_clock::now();
      timing->backbone_us = MicrosecondsBetween(backbone_start, cam_start);
      timing->cam_us = MicrosecondsBetween(cam_start, end);
    }
    return ToCamResults(targets, maps, probs, num_classes());
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("explain failed: ", e.what()));
  }
}

}  // namespace cropshield::engine
