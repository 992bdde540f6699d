#include "server/engine/gpu_image/gpu_preprocess.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cropshield::engine {
namespace {

absl::Status CheckImage(const at::Tensor& image, const at::Device& device) {
  if (!image.defined() || image.dim() != 3 || image.size(2) != 3 ||
      image.scalar_type() != at::kByte || !image.is_cuda()) {
    return absl::InvalidArgumentError("GPU preprocessing takes HxWx3 uint8 CUDA tensors");
  }
  if (image.device() != device) {
    return absl::InvalidArgumentError("GPU preprocessing: images on different devices");
  }
  if (image.size(0) < 1 || image.size(1) < 1) {
    return absl::InvalidArgumentError("GPU preprocessing: empty image");
  }
  return absl::OkStatus();
}

absl::Status CheckOptions(const GpuPreprocessOptions& options) {
  const image::PreprocessOptions& p = options.preprocess;
  if (p.input_size < 1 || p.resize_shorter_side < p.input_size) {
    return absl::InvalidArgumentError(
        "GPU preprocessing needs 1 <= input_size <= resize_shorter_side");
  }
  for (int c = 0; c < 3; ++c) {
    if (!(p.std[c] > 0)) return absl::InvalidArgumentError("GPU preprocessing: std must be > 0");
  }
  if (options.dtype != at::kFloat && options.dtype != at::kHalf && options.dtype != at::kBFloat16) {
    return absl::InvalidArgumentError("GPU preprocessing: dtype must be fp32, fp16 or bf16");
  }
  return absl::OkStatus();
}

// torchvision Resize(size) -> CenterCrop(crop) on a batch of uint8 images of one size
// (N x H x W x 3, any strides): N x 3 x crop x crop floats holding whole numbers in [0, 255]
// (torchvision rounds uint8 results).
at::Tensor ResizeAndCenterCrop(const at::Tensor& nhwc, int64_t size, int64_t crop) {
  const int64_t height = nhwc.size(1);
  const int64_t width = nhwc.size(2);
  const int64_t shorter = std::min(height, width);
  const int64_t longer = std::max(height, width);
  // torchvision: int(size * long / short), a truncated true division.
  const auto new_longer =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  const int64_t new_height = height <= width ? size : new_longer;
  const int64_t new_width = height <= width ? new_longer : size;
  at::Tensor nchw = nhwc.permute({0, 3, 1, 2}).to(at::kFloat);
  if (new_height != height || new_width != width) {
    nchw = at::_upsample_bilinear2d_aa(nchw, {new_height, new_width}, /*align_corners=*/false);
    nchw = nchw.round_().clamp_(0, 255);
  }
  // Python's round() of (resized - crop) / 2: half to even, as std::nearbyint by default.
  const auto top = static_cast<int64_t>(std::nearbyint((new_height - crop) / 2.0));
  const auto left = static_cast<int64_t>(std::nearbyint((new_width - crop) / 2.0));
  return nchw.slice(2, top, top + crop).slice(3, left, left + crop);
}

// Resamples images of equal size together (one kernel per group instead of one per image), in
// chunks of at most kChunkPixels source pixels to bound the fp32 working memory.
at::Tensor ResizeAndCropAll(absl::Span<const at::Tensor> images, int64_t size, int64_t crop) {
  constexpr int64_t kChunkPixels = 32'000'000;
  std::vector<at::Tensor> crops(images.size());
  std::vector<bool> done(images.size(), false);
  for (size_t first = 0; first < images.size(); ++first) {
    if (done[first]) continue;
    std::vector<size_t> group;
    for (size_t i = first; i < images.size(); ++i) {
      if (!done[i] && images[i].sizes() == images[first].sizes()) group.push_back(i);
    }
    const int64_t pixels = images[first].size(0) * images[first].size(1);
    const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, kChunkPixels / pixels));
    for (size_t start = 0; start < group.size(); start += chunk) {
      std::vector<at::Tensor> members;
      for (size_t k = start; k < std::min(group.size(), start + chunk); ++k) {
        members.push_back(images[group[k]]);
      }
      const at::Tensor resized = ResizeAndCenterCrop(at::stack(members), size, crop);
      for (size_t k = 0; k < members.size(); ++k) crops[group[start + k]] = resized[k];
    }
    for (size_t i : group) done[i] = true;
  }
  return at::stack(crops);
}

// ToTensor + Normalize on the batch of 0..255 values, then channel order, dtype and layout.
at::Tensor NormaliseBatch(at::Tensor batch, const GpuPreprocessOptions& options) {
  const image::PreprocessOptions& p = options.preprocess;
  const auto on_device = at::TensorOptions().dtype(at::kFloat).device(batch.device());
  const at::Tensor mean =
      at::tensor(std::vector<float>(p.mean.begin(), p.mean.end()), on_device).view({1, 3, 1, 1});
  const at::Tensor std =
      at::tensor(std::vector<float>(p.std.begin(), p.std.end()), on_device).view({1, 3, 1, 1});
  batch.div_(255.0f).sub_(mean).div_(std);
  if (p.bgr) batch = batch.flip({1});
  batch = batch.to(options.dtype);
  const auto format =
      options.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  return batch.contiguous(format);
}

}  // namespace

absl::StatusOr<at::ScalarType> GpuInputDtype(absl::string_view precision) {
  if (precision == "fp32") return at::kFloat;
  if (precision == "fp16") return at::kHalf;
  if (precision == "bf16") return at::kBFloat16;
  return absl::InvalidArgumentError(absl::StrCat("unknown precision '", precision, "'"));
}

absl::StatusOr<at::Tensor> GpuPreprocess(absl::Span<const at::Tensor> images,
                                         const GpuPreprocessOptions& options) {
  if (images.empty()) return absl::InvalidArgumentError("GPU preprocessing: empty batch");
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  try {
    const at::Device device = images[0].defined() ? images[0].device() : at::Device(at::kCPU);
    for (const at::Tensor& image : images) {
      if (absl::Status s = CheckImage(image, device); !s.ok()) return s;
    }
    const image::PreprocessOptions& p = options.preprocess;
    return NormaliseBatch(ResizeAndCropAll(images, p.resize_shorter_side, p.input_size), options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("GPU preprocessing: ", e.what()));
  }
}

}  // namespace cropshield::engine
