// An immutable, loaded and warmed-up TorchScript classifier. Only the engine's sources include
// torch headers (model.cc, model_create.cc, cuda_graphs.cc, cam.cc and the internal model_impl.h
// and cam.h): everything else sees this torch-free interface.
//
// Thread-safety: after Create returns, every const method may be called from any number of
// threads at once (TorchScript forwards are reentrant; no lock is held around inference). Hand
// models out as std::shared_ptr<const Model> so that a swap never frees one in use.
#ifndef CROPSHIELD_SERVER_ENGINE_MODEL_H_
#define CROPSHIELD_SERVER_ENGINE_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "server/engine/model_package.h"

namespace cropshield::engine {

struct ModelOptions {
  ModelPackage package;
  // "auto" (CUDA when available, else CPU), "cpu", "cuda" or "cuda:N".
  std::string device = "auto";
  // Freeze + optimize_for_inference at load; kept only when outputs agree with the original.
  bool optimize = true;
  // "fp32", or on CUDA "fp16" / "bf16": checked against fp32 on the warm-up inputs (the top-1 class
  // must agree; the largest probability difference is reported in LoadReport).
  std::string precision = "fp32";
  // On CUDA, weights and inputs in channels_last memory format (faster convolutions with cuDNN).
  bool channels_last = true;
  // Largest batch the caller will send; on CUDA warm-up covers batch 1, powers of two and this size
  // (cuDNN autotuning), on CPU batch 1 only.
  int max_batch_size = 1;
  // Forward passes per warm-up batch size (the profiling executor specialises on early calls).
  int warmup_iterations = 3;
  // On CUDA, record Classify's forward as one CUDA graph per warmed batch size and replay it
  // (each graph is checked against the eager forward at load). Ignored on CPU.
  bool cuda_graphs = false;
};

// What happened at load, for logs, Stats and metrics.
struct LoadReport {
  double load_seconds = 0;    // torch::jit::load + checks
  double warmup_seconds = 0;  // optimisation + warm-up forwards
  bool optimized = false;     // the frozen, optimised module is the one serving
  // Largest probability difference between the serving module (optimised and/or reduced precision)
  // and the fp32 original on the warm-up inputs.
  double optimized_max_abs_diff = 0;
  std::string optimize_note;     // why the optimised module was not used, if it was not
  int cuda_graphs = 0;           // batch sizes Classify replays as CUDA graphs
  std::string cuda_graphs_note;  // why none were recorded, when they were asked for
};

// A batch of preprocessed images, one span of Model::input_elements() floats (CHW) per image.
using ImageSpans = absl::Span<const absl::Span<const float>>;

// Class activation map variants (all computed from one features/head split of the model).
enum class CamMethod {
  kGradCam,          // Selvaraju et al. 2017: weights = spatial mean of the gradients
  kGradCamPlusPlus,  // Chattopadhay et al. 2018: weights from 2nd/3rd-order terms (exp score)
  kHiResCam,         // Draelos & Carin 2020: sum over channels of gradient * activation
  kLayerCam,         // Jiang et al. 2021: sum over channels of relu(gradient) * activation
};

// One image of an Explain batch.
struct CamRequest {
  int target_class = -1;  // -1: the top-1 class
  CamMethod method = CamMethod::kGradCam;
};

struct CamResult {
  int target_class = 0;
  std::vector<float> probabilities;  // softmax, one per class
  int map_width = 0;                 // feature resolution (e.g. 14 x 14)
  int map_height = 0;
  std::vector<float> map;  // map_height x map_width, row-major, min-max normalised to [0, 1]
};

// Time spent by one Explain batch.
struct ExplainTiming {
  int64_t backbone_us = 0;  // features() without autograd
  int64_t cam_us = 0;       // head forward + gradient + map arithmetic
};

class Model {
 public:
  static absl::StatusOr<std::unique_ptr<Model>> Create(ModelOptions options);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const cropshield::v1::ModelMetadata& metadata() const { return package_.metadata; }
  const ModelPackage& package() const { return package_; }
  const std::string& name() const { return package_.metadata.name(); }
  int64_t version() const { return package_.metadata.version(); }
  int num_classes() const { return package_.metadata.labels_size(); }
  int input_size() const { return package_.metadata.preprocessing().input_size(); }
  // Floats per input image: 3 * input_size^2, CHW.
  int64_t input_elements() const { return 3LL * input_size() * input_size(); }
  const std::string& device_name() const { return device_name_; }
  const std::string& precision() const { return precision_; }
  const LoadReport& load_report() const { return load_report_; }

  // Runs the model on `batch_size` preprocessed inputs laid out back to back (CHW floats each) and
  // writes the softmax probabilities (batch_size x num_classes, row-major). INTERNAL when the
  // backend fails; INVALID_ARGUMENT on size mismatches.
  absl::Status Classify(absl::Span<const float> inputs, int batch_size,
                        absl::Span<float> probabilities) const;
  // The same for images anywhere in memory (a batch of requests' own buffers): on CUDA each image
  // is copied once, into the pinned staging buffer.
  absl::Status Classify(ImageSpans images, absl::Span<float> probabilities) const;

  // Class activation maps for requests.size() preprocessed inputs laid out back to back, computed
  // as one batch: the backbone runs without autograd, and gradients are taken only with respect
  // to the detached activation through the head (never backward through the backbone).
  // INVALID_ARGUMENT for out-of-range target classes or size mismatches; INTERNAL on backend
  // errors.
  absl::StatusOr<std::vector<CamResult>> Explain(absl::Span<const float> inputs,
                                                 absl::Span<const CamRequest> requests,
                                                 ExplainTiming* timing = nullptr) const;
  // The same with one span per image (requests.size() of them).
  absl::StatusOr<std::vector<CamResult>> Explain(ImageSpans images,
                                                 absl::Span<const CamRequest> requests,
                                                 ExplainTiming* timing = nullptr) const;

 private:
  struct Impl;
  Model(ModelPackage package, std::unique_ptr<Impl> impl);

  ModelPackage package_;
  std::unique_ptr<Impl> impl_;
  std::string device_name_;
  std::string precision_ = "fp32";
  LoadReport load_report_;
};

// Process-wide torch settings; call once at start before any model is created. Sets the intra-op
// thread count (0 leaves torch's default) and keeps glibc malloc from returning big buffers to the
// OS after every forward (page faults made forwards 2-10x slower, see PLATFORM.md). Because freed
// memory is kept, glibc's default of 8 arenas per core lets every new gRPC or worker thread grow
// its own arena to the size of the images it saw; `malloc_arenas` caps them (0: one per core).
// Measured in the soak test on 2 cores: RSS +6% over 48 s with the default, flat with 2 arenas.
void ConfigureTorchRuntime(int intra_op_threads, int malloc_arenas = 0);

// INT8 (quantized) packages are CPU-only: FAILED_PRECONDITION, saying so, when `package` is
// quantized and the device is CUDA; OK otherwise. Create calls it before loading.
absl::Status CheckQuantizedPackageDevice(const ModelPackage& package, bool device_is_cuda);

// True when libtorch was built with CUDA and a device is visible.
bool CudaAvailable();

// True when a --device spec ("auto", "cpu", "cuda", "cuda:N") resolves to a CUDA device here;
// false for CPU and for specs Model::Create would refuse.
bool DeviceIsCuda(const std::string& spec);

// The device a --device spec resolves to here ("cpu", "cuda:0", ...); the spec itself when
// Model::Create would refuse it.
std::string ResolvedDeviceName(const std::string& spec);

// The libtorch version this binary was built against (TORCH_VERSION), e.g. "1.13.0".
std::string TorchVersion();

// Hands the heap's free memory back to the OS (glibc malloc_trim). ConfigureTorchRuntime makes
// glibc keep freed memory so that forwards stay fast; call this when the server is idle, since
// the next allocations fault their pages in again.
void ReleaseFreeMemory();

// Memory held by libtorch's CUDA caching allocator on one device (what torch.cuda.memory_allocated
// and torch.cuda.memory_reserved report), for metrics.
struct GpuMemoryStats {
  int device = 0;               // CUDA device index
  int64_t allocated_bytes = 0;  // occupied by live tensors
  int64_t reserved_bytes = 0;   // held by the allocator: allocated plus cached free blocks
};

// One entry per visible CUDA device whose allocator has been used; empty on CPU-only hosts and in
// builds against a libtorch without CUDA (there it compiles to an empty function). Never throws;
// cheap enough to call on every metrics scrape.
std::vector<GpuMemoryStats> CudaMemoryStats();

}  // namespace cropshield::engine

#endif  // CROPSHIELD_SERVER_ENGINE_MODEL_H_
