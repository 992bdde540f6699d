// Batched JPEG decoding on the GPU with nvJPEG (issue #14 item 1): compressed bytes in, device
// uint8 RGB images out, EXIF orientation applied on the GPU. Built only where libtorch has CUDA and
// the CUDA toolkit has nvJPEG; internal to the engine (its results are torch tensors).
//
// Every image gets its own absl::Status: what nvJPEG cannot decode (progressive JPEG on the
// hardware engine, CMYK/YCCK, truncated or corrupt data, non-JPEG bytes) comes back as an error
// for that image only, so that the caller can decode it on the CPU (server/image) instead.
//
// Thread safety: Create may be called from any thread. Decode may be called from any number of
// threads at once; calls on one decoder are serialised by an internal mutex (it owns one nvJPEG
// decoding state). Use one decoder per worker thread for parallel decoding.
#ifndef CROPSHIELD_SERVER_ENGINE_GPU_IMAGE_GPU_JPEG_DECODER_H_
#define CROPSHIELD_SERVER_ENGINE_GPU_IMAGE_GPU_JPEG_DECODER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace cropshield::engine {

enum class GpuJpegBackend {
  kAuto,       // the hardware JPEG engine where the GPU has one (A100, H100, H200), else kGpuHybrid
  kHardware,   // NVJPEG_BACKEND_HARDWARE only: Create fails on GPUs without a JPEG engine
  kGpuHybrid,  // NVJPEG_BACKEND_DEFAULT: CUDA kernels with Huffman decoding on the host
};

struct GpuJpegDecoderOptions {
  int device_index = 0;  // CUDA device the images are decoded on and returned from
  GpuJpegBackend backend = GpuJpegBackend::kAuto;
  // Stored width*height above this -> INVALID_ARGUMENT for that image (decompression bombs), as
  // image::DecodeOptions::max_pixels on the CPU path.
  int64_t max_pixels = 40'000'000;
  // Host threads nvJPEG may use for the hybrid backend's Huffman decoding.
  int hybrid_cpu_threads = 4;
};

struct GpuDecodedImage {
  // height x width x 3 uint8 RGB on the decoder's device, in display orientation (EXIF applied).
  // May be a non-contiguous view (transposed or flipped) of the decoded buffer; it is ready for use
  // on the device's current CUDA stream.
  at::Tensor rgb;
  int orientation = 1;  // the EXIF orientation that was applied (1..8)
};

// Host time of one Decode call (the decode is asynchronous: decode_us is the time to enqueue it,
// which includes nvJPEG's host-side Huffman work where its backend does that on the host).
struct GpuDecodeTiming {
  int64_t screen_us = 0;  // CPU header parse + nvJPEG header parse and support checks
  int64_t decode_us = 0;  // buffer allocation + nvjpegDecodeBatched (+ per-image retries)
};

class GpuJpegDecoder {
 public:
  // FAILED_PRECONDITION when there is no such CUDA device or nvJPEG cannot start on it
  // (kHardware on a GPU without a JPEG engine).
  static absl::StatusOr<std::unique_ptr<GpuJpegDecoder>> Create(GpuJpegDecoderOptions options);
  ~GpuJpegDecoder();
  GpuJpegDecoder(const GpuJpegDecoder&) = delete;
  GpuJpegDecoder& operator=(const GpuJpegDecoder&) = delete;

  // Decodes the JPEGs as one batch. Element i answers jpegs[i]: the image, or INVALID_ARGUMENT
  // (not a JPEG, corrupt, truncated, too large) or UNIMPLEMENTED (valid JPEG that this backend
  // does not decode: CMYK/YCCK, progressive on the hardware engine). A decoding failure of the
  // whole batch is retried image by image, so a corrupt image fails alone.
  // Fills *timing when it is not null.
  std::vector<absl::StatusOr<GpuDecodedImage>> Decode(absl::Span<const absl::string_view> jpegs,
                                                      GpuDecodeTiming* timing = nullptr);

  // "hardware" or "gpu-hybrid".
  const std::string& backend_name() const;

 private:
  struct Impl;
  explicit GpuJpegDecoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cropshield::engine

#endif  // CROPSHIELD_SERVER_ENGINE_GPU_IMAGE_GPU_JPEG_DECODER_H_
