// Model input preparation on the GPU (issue #14 item 1): the device counterpart of
// image::Preprocess, i.e. torchvision's Resize(shorter side, antialiased bilinear) -> CenterCrop ->
// ToTensor -> Normalize, applied to decoded uint8 RGB images already on the device (for example
// from GpuJpegDecoder) and producing the batch in the serving precision.
//
// Unlike the CPU path, which resamples a DCT-downscaled decode, this resamples the full-size photo,
// as torchvision does; both stay within the parity bound (mean abs difference <= 0.06).
//
// Thread safety: the functions are reentrant; they enqueue work on the calling thread's current
// CUDA stream of the images' device.
#ifndef CROPSHIELD_SERVER_ENGINE_GPU_IMAGE_GPU_PREPROCESS_H_
#define CROPSHIELD_SERVER_ENGINE_GPU_IMAGE_GPU_PREPROCESS_H_

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/image/preprocess.h"

namespace cropshield::engine {

struct GpuPreprocessOptions {
  // The model's preprocessing, filled from its metadata as on the CPU path
  // (engine::PreprocessOptionsOf).
  image::PreprocessOptions preprocess;
  // Serving precision of the model input: at::kFloat, at::kHalf or at::kBFloat16.
  at::ScalarType dtype = at::kFloat;
  // Return the batch in channels_last memory format (what the CUDA model runs in).
  bool channels_last = true;
};

// "fp32" / "fp16" / "bf16" (engine::ModelOptions::precision) -> the tensor dtype.
absl::StatusOr<at::ScalarType> GpuInputDtype(absl::string_view precision);

// Prepares `images` (each height x width x 3 uint8 RGB in display orientation, any strides, all on
// one CUDA device) as one N x 3 x input_size x input_size batch on that device. Geometry follows
// torchvision exactly (long side int(size * long / short), crop offset round-half-even, resampled
// values rounded to uint8 as torchvision does for uint8 inputs). INVALID_ARGUMENT for an empty
// batch, images that are not HxWx3 uint8 CUDA tensors, or bad options; INTERNAL on CUDA errors.
absl::StatusOr<at::Tensor> GpuPreprocess(absl::Span<const at::Tensor> images,
                                         const GpuPreprocessOptions& options);

}  // namespace cropshield::engine

#endif  // CROPSHIELD_SERVER_ENGINE_GPU_IMAGE_GPU_PREPROCESS_H_
