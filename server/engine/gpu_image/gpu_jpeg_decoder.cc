#include "server/engine/gpu_image/gpu_jpeg_decoder.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nvjpeg.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/image/decode.h"

namespace cropshield::engine {
namespace {

absl::Status NvjpegError(nvjpegStatus_t status, absl::string_view what) {
  return absl::InternalError(absl::StrCat("nvJPEG ", what, " failed with status ", status));
}

// A JPEG cut short has no EOI marker at its end. Inside entropy-coded data 0xFF is always followed
// by 0x00 or a restart marker, so FF D9 near the end can only be the EOI; the window tolerates the
// trailing padding some cameras append.
bool HasEndOfImageMarker(absl::string_view bytes) {
  constexpr size_t kTrailingWindow = 4096;
  const size_t start = bytes.size() > kTrailingWindow ? bytes.size() - kTrailingWindow : 0;
  return bytes.substr(start).find("\xFF\xD9") != absl::string_view::npos;
}

// The decoded image (stored orientation, HWC) turned into display orientation, as
// image::internal::ApplyExifOrientation does on the CPU (dimension 0 = rows, 1 = columns).
at::Tensor ApplyOrientation(const at::Tensor& hwc, int orientation) {
  switch (orientation) {
    case 2:  // Mirrored horizontally.
      return hwc.flip({1});
    case 3:  // Rotated 180.
      return hwc.flip({0, 1});
    case 4:  // Mirrored vertically.
      return hwc.flip({0});
    case 5:  // Transposed.
      return hwc.transpose(0, 1);
    case 6:  // Needs 90 degrees clockwise.
      return hwc.transpose(0, 1).flip({1});
    case 7:  // Transversed.
      return hwc.transpose(0, 1).flip({0, 1});
    case 8:  // Needs 90 degrees counter-clockwise.
      return hwc.transpose(0, 1).flip({0});
    default:
      return hwc;
  }
}

}  // namespace

struct GpuJpegDecoder::Impl {
  GpuJpegDecoderOptions options;
  std::string backend_name;
  bool hardware = false;
  nvjpegHandle_t handle = nullptr;
  nvjpegJpegState_t state = nullptr;
  nvjpegJpegStream_t parsed = nullptr;  // reused to screen each image's headers
  int initialized_batch_size = 0;
  absl::Mutex mutex;

  ~Impl() {
    if (parsed != nullptr) nvjpegJpegStreamDestroy(parsed);
    if (state != nullptr) nvjpegJpegStateDestroy(state);
    if (handle != nullptr) nvjpegDestroy(handle);
  }

  // What the CPU parser and nvJPEG say about one image before any decoding: its stored size and
  // orientation, or why it must go to the CPU path.
  absl::StatusOr<image::ImageInfo> Screen(absl::string_view bytes);
  // One nvjpegDecodeBatched call over `jpegs` into the preallocated HWC buffers `outputs`.
  absl::Status DecodeBatch(absl::Span<const absl::string_view> jpegs,
                           absl::Span<const at::Tensor> outputs, cudaStream_t stream);
  std::vector<absl::StatusOr<GpuDecodedImage>> DecodeLocked(
      absl::Span<const absl::string_view> jpegs, GpuDecodeTiming* timing);
};

absl::StatusOr<image::ImageInfo> GpuJpegDecoder::Impl::Screen(absl::string_view bytes) {
  absl::StatusOr<image::ImageInfo> info = image::ProbeImage(bytes);
  if (!info.ok()) return info.status();
  if (info->format != image::ImageFormat::kJpeg) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a JPEG (", image::ImageFormatName(info->format), ")"));
  }
  if (static_cast<int64_t>(info->width) * info->height > options.max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", info->width, "x", info->height,
                                                   ", over the limit of ", options.max_pixels,
                                                   " pixels"));
  }
  if (!HasEndOfImageMarker(bytes)) return absl::InvalidArgumentError("truncated JPEG data");
  // Headers only: a full parse walks the entropy-coded data on the host (the decode does that).
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (nvjpegJpegStreamParseHeader(handle, data, bytes.size(), parsed) != NVJPEG_STATUS_SUCCESS) {
    return absl::InvalidArgumentError("corrupt JPEG data: nvJPEG cannot parse it");
  }
  unsigned int components = 0;
  nvjpegJpegStreamGetComponentsNum(parsed, &components);
  if (components != 1 && components != 3) {
    return absl::UnimplementedError(
        absl::StrCat("JPEG with ", components, " components (CMYK/YCCK): decode on the CPU"));
  }
  if (hardware) {
    int unsupported = 0;
    const nvjpegStatus_t s = nvjpegDecodeBatchedSupported(handle, parsed, &unsupported);
    if (s != NVJPEG_STATUS_SUCCESS || unsupported != 0) {
      return absl::UnimplementedError(
          "the hardware JPEG engine does not decode this JPEG (progressive or unusual sampling)");
    }
  }
  return info;
}

absl::Status GpuJpegDecoder::Impl::DecodeBatch(absl::Span<const absl::string_view> jpegs,
                                               absl::Span<const at::Tensor> outputs,
                                               cudaStream_t stream) {
  const int n = static_cast<int>(jpegs.size());
  if (n != initialized_batch_size) {
    const nvjpegStatus_t s = nvjpegDecodeBatchedInitialize(
        handle, state, n, std::max(1, options.hybrid_cpu_threads), NVJPEG_OUTPUT_RGBI);
    if (s != NVJPEG_STATUS_SUCCESS) return NvjpegError(s, "batch initialisation");
    initialized_batch_size = n;
  }
  std::vector<const unsigned char*> data(n);
  std::vector<size_t> lengths(n);
  std::vector<nvjpegImage_t> destinations(n);
  for (int i = 0; i < n; ++i) {
    data[i] = reinterpret_cast<const unsigned char*>(jpegs[i].data());
    lengths[i] = jpegs[i].size();
    destinations[i] = nvjpegImage_t{};
    destinations[i].channel[0] = outputs[i].data_ptr<uint8_t>();
    destinations[i].pitch[0] = static_cast<size_t>(outputs[i].size(1)) * 3;
  }
  const nvjpegStatus_t s =
      nvjpegDecodeBatched(handle, state, data.data(), lengths.data(), destinations.data(), stream);
  if (s != NVJPEG_STATUS_SUCCESS) return NvjpegError(s, "batched decode");
  return absl::OkStatus();
}

std::vector<absl::StatusOr<GpuDecodedImage>> GpuJpegDecoder::Impl::DecodeLocked(
    absl::Span<const absl::string_view> jpegs, GpuDecodeTiming* timing) {
  const absl::Time start = absl::Now();
  std::vector<absl::StatusOr<GpuDecodedImage>> results(jpegs.size());
  std::vector<size_t> accepted;
  std::vector<absl::string_view> accepted_bytes;
  std::vector<at::Tensor> buffers;
  std::vector<int> orientations;
  const auto device_options = at::TensorOptions().dtype(at::kByte).device(
      at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(options.device_index)));
  for (size_t i = 0; i < jpegs.size(); ++i) {
    absl::StatusOr<image::ImageInfo> info = Screen(jpegs[i]);
    if (!info.ok()) {
      results[i] = info.status();
      continue;
    }
    accepted.push_back(i);
    accepted_bytes.push_back(jpegs[i]);
    buffers.push_back(at::empty({info->height, info->width, 3}, device_options));
    orientations.push_back(info->orientation);
  }
  if (timing != nullptr) timing->screen_us = absl::ToInt64Microseconds(absl::Now() - start);
  if (accepted.empty()) return results;
  const cudaStream_t stream =
      c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(options.device_index)).stream();
  std::vector<absl::Status> statuses(accepted.size());
  if (!DecodeBatch(accepted_bytes, buffers, stream).ok()) {
    // Find the images that broke the batch: the others still decode on the GPU.
    for (size_t k = 0; k < accepted.size(); ++k) {
      absl::Status single = DecodeBatch(absl::MakeConstSpan(&accepted_bytes[k], 1),
                                        absl::MakeConstSpan(&buffers[k], 1), stream);
      if (!single.ok()) {
        statuses[k] =
            absl::InvalidArgumentError(absl::StrCat("corrupt JPEG data: ", single.message()));
      }
    }
  }
  if (timing != nullptr) {
    timing->decode_us = absl::ToInt64Microseconds(absl::Now() - start) - timing->screen_us;
  }
  for (size_t k = 0; k < accepted.size(); ++k) {
    if (!statuses[k].ok()) {
      results[accepted[k]] = statuses[k];
    } else {
      results[accepted[k]] =
          GpuDecodedImage{ApplyOrientation(buffers[k], orientations[k]), orientations[k]};
    }
  }
  return results;
}

GpuJpegDecoder::GpuJpegDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuJpegDecoder::~GpuJpegDecoder() = default;

const std::string& GpuJpegDecoder::backend_name() const { return impl_->backend_name; }

absl::StatusOr<std::unique_ptr<GpuJpegDecoder>> GpuJpegDecoder::Create(
    GpuJpegDecoderOptions options) {
  try {
    if (options.device_index < 0 || options.device_index >= c10::cuda::device_count()) {
      return absl::FailedPreconditionError(
          absl::StrCat("no CUDA device ", options.device_index, " for GPU JPEG decoding"));
    }
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(options.device_index));
    auto impl = std::make_unique<Impl>();
    impl->options = options;
    nvjpegStatus_t s = NVJPEG_STATUS_SUCCESS;
    if (options.backend != GpuJpegBackend::kGpuHybrid) {
      s = nvjpegCreateEx(NVJPEG_BACKEND_HARDWARE, nullptr, nullptr, NVJPEG_FLAGS_DEFAULT,
                         &impl->handle);
      impl->hardware = s == NVJPEG_STATUS_SUCCESS;
      if (!impl->hardware && options.backend == GpuJpegBackend::kHardware) {
        return absl::FailedPreconditionError(
            absl::StrCat("nvJPEG hardware backend unavailable (status ", s, ")"));
      }
    }
    if (!impl->hardware) {
      impl->handle = nullptr;
      s = nvjpegCreateEx(NVJPEG_BACKEND_DEFAULT, nullptr, nullptr, NVJPEG_FLAGS_DEFAULT,
                         &impl->handle);
      if (s != NVJPEG_STATUS_SUCCESS) {
        impl->handle = nullptr;
        return absl::FailedPreconditionError(NvjpegError(s, "start").message());
      }
    }
    impl->backend_name = impl->hardware ? "hardware" : "gpu-hybrid";
    if ((s = nvjpegJpegStateCreate(impl->handle, &impl->state)) != NVJPEG_STATUS_SUCCESS ||
        (s = nvjpegJpegStreamCreate(impl->handle, &impl->parsed)) != NVJPEG_STATUS_SUCCESS) {
      return absl::FailedPreconditionError(NvjpegError(s, "state creation").message());
    }
    return absl::WrapUnique(new GpuJpegDecoder(std::move(impl)));
  } catch (const std::exception& e) {
    return absl::FailedPreconditionError(absl::StrCat("GPU JPEG decoder: ", e.what()));
  }
}

std::vector<absl::StatusOr<GpuDecodedImage>> GpuJpegDecoder::Decode(
    absl::Span<const absl::string_view> jpegs, GpuDecodeTiming* timing) {
  absl::MutexLock lock(&impl_->mutex);
  try {
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(impl_->options.device_index));
    return impl_->DecodeLocked(jpegs, timing);
  } catch (const std::exception& e) {
    // CUDA out of memory and the like: every image goes to the CPU path.
    const absl::Status error = absl::InternalError(absl::StrCat("GPU JPEG decoding: ", e.what()));
    return std::vector<absl::StatusOr<GpuDecodedImage>>(jpegs.size(), error);
  }
}

}  // namespace cropshield::engine
