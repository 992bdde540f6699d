// GPU JPEG decoding + preprocessing throughput (issue #14 item 1) against the CPU path on all host
// cores, in one run. GPU: GpuJpegDecoder (nvJPEG batched) + GpuPreprocess to the model input in the
// serving precision, device-synchronised per batch. CPU: the serving path (DCT-scaled TurboJPEG
// decode + image::Preprocess to fp32) on --cpu_threads threads. Prints medians in img/s.
//
// usage: cropshield-gpu-decode-bench --photos DIR[,DIR...] [--model models/repository]
//        [--batch 64] [--iterations 30] [--cpu_threads 16] [--precision fp16]
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "server/engine/gpu_image/gpu_jpeg_decoder.h"
#include "server/engine/gpu_image/gpu_preprocess.h"
#include "server/engine/model_package.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"

ABSL_FLAG(std::string, photos, "", "Comma-separated directories of *.jpg, one workload each.");
ABSL_FLAG(std::string, model, "models/repository", "Model package: its preprocessing is used.");
ABSL_FLAG(int, batch, 64, "Images per GPU batch (the photos are repeated to fill it).");
ABSL_FLAG(int, iterations, 30, "Timed GPU batches and CPU rounds per workload (after warm-up).");
ABSL_FLAG(int, cpu_threads, 16, "Threads of the CPU path.");
ABSL_FLAG(std::string, precision, "fp16", "Model input dtype on the GPU: fp32, fp16 or bf16.");
ABSL_FLAG(int, gpu_threads, 4,
          "Also time this many host threads, each with its own decoder and CUDA stream.");

namespace {

using Clock = std::chrono::steady_clock;
namespace engine = cropshield::engine;
namespace image = cropshield::image;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::vector<std::string> ReadBatch(const std::string& dir, int batch, double* mean_bytes) {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".jpg") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    files.push_back(s.str());
  }
  double total = 0;
  for (const auto& f : files) total += f.size();
  *mean_bytes = files.empty() ? 0 : total / files.size();
  std::vector<std::string> out;
  for (int i = 0; !files.empty() && i < batch; ++i) out.push_back(files[i % files.size()]);
  return out;
}

// Median img/s of decode (+ preprocess when `preprocess`) of the batch on the GPU.
// Also prints the median host time of the decoder's screening and decode-enqueue steps per batch.
double GpuImagesPerSecond(engine::GpuJpegDecoder& decoder, const std::vector<std::string>& batch,
                          const engine::GpuPreprocessOptions* preprocess, int iterations) {
  std::vector<double> screen_ms, enqueue_ms;
  std::vector<absl::string_view> views(batch.begin(), batch.end());
  auto stream = c10::cuda::getCurrentCUDAStream();
  std::vector<double> rates;
  for (int i = -3; i < iterations; ++i) {  // 3 warm-up batches
    stream.synchronize();
    const auto start = Clock::now();
    std::vector<at::Tensor> images;
    engine::GpuDecodeTiming timing;
    for (auto& decoded : decoder.Decode(views, &timing)) {
      if (!decoded.ok()) {
        std::fprintf(stderr, "GPU decode failed: %s\n", decoded.status().ToString().c_str());
        return 0;
      }
      images.push_back(decoded->rgb);
    }
    if (preprocess != nullptr && !engine::GpuPreprocess(images, *preprocess).ok()) return 0;
    stream.synchronize();
    if (i >= 0) rates.push_back(batch.size() / Seconds(start));
    if (i >= 0) screen_ms.push_back(timing.screen_us / 1000.0);
    if (i >= 0) enqueue_ms.push_back(timing.decode_us / 1000.0);
  }
  std::printf(
      "  %s: median per batch %.2f ms, of which host screening %.2f ms, decode enqueue %.2f ms\n",
      preprocess != nullptr ? "decode+preprocess" : "decode", batch.size() * 1000.0 / Median(rates),
      Median(screen_ms), Median(enqueue_ms));
  return Median(rates);
}

// Aggregate img/s of `threads` host threads, each with its own decoder and CUDA stream, decoding
// and preprocessing `iterations` batches each after 3 warm-up batches (wall time of the timed
// part).
double GpuParallelImagesPerSecond(const std::vector<std::string>& batch,
                                  const engine::GpuPreprocessOptions& preprocess, int threads,
                                  int iterations) {
  std::vector<absl::string_view> views(batch.begin(), batch.end());
  std::atomic<int> warm{0};
  std::atomic<bool> failed{false};
  std::vector<std::thread> pool;
  Clock::time_point start;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      auto decoder = engine::GpuJpegDecoder::Create(engine::GpuJpegDecoderOptions{});
      if (!decoder.ok()) return failed.store(true);
      c10::cuda::CUDAStreamGuard stream_guard(c10::cuda::getStreamFromPool());
      for (int i = -3; i < iterations; ++i) {
        if (i == 0 && warm.fetch_add(1) + 1 == threads) start = Clock::now();
        while (i == 0 && warm.load() < threads) std::this_thread::yield();
        std::vector<at::Tensor> images;
        for (auto& decoded : (*decoder)->Decode(views)) {
          if (!decoded.ok()) return failed.store(true);
          images.push_back(decoded->rgb);
        }
        if (!engine::GpuPreprocess(images, preprocess).ok()) return failed.store(true);
        c10::cuda::getCurrentCUDAStream().synchronize();
      }
    });
  }
  for (auto& t : pool) t.join();
  if (failed.load()) return 0;
  return static_cast<double>(threads) * iterations * batch.size() / Seconds(start);
}

// Median img/s of the CPU serving path over rounds of `per_round` images on `threads` threads.
double CpuImagesPerSecond(const std::vector<std::string>& batch,
                          const image::PreprocessOptions& options, int threads, int per_round,
                          int rounds) {
  std::vector<double> rates;
  for (int r = -1; r < rounds; ++r) {  // 1 warm-up round
    std::atomic<int> next{0};
    std::atomic<int> failures{0};
    const auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        std::vector<float> input(3 * options.input_size * options.input_size);
        image::DecodeOptions decode_options;
        decode_options.min_shorter_side = options.resize_shorter_side;
        for (int i; (i = next.fetch_add(1)) < per_round;) {
          auto decoded = image::DecodeImage(batch[i % batch.size()], decode_options);
          if (!decoded.ok() ||
              !image::Preprocess(*decoded, options, absl::MakeSpan(input), nullptr).ok()) {
            failures.fetch_add(1);
          }
        }
      });
    }
    for (auto& t : pool) t.join();
    if (failures.load() > 0) std::fprintf(stderr, "CPU path: %d failures\n", failures.load());
    if (r >= 0) rates.push_back(per_round / Seconds(start));
  }
  return Median(rates);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto package = engine::ResolveModelPackage(absl::GetFlag(FLAGS_model));
  auto decoder = engine::GpuJpegDecoder::Create(engine::GpuJpegDecoderOptions{});
  auto dtype = engine::GpuInputDtype(absl::GetFlag(FLAGS_precision));
  if (!package.ok() || !decoder.ok() || !dtype.ok()) {
    std::fprintf(stderr, "setup failed: %s %s %s\n", package.status().ToString().c_str(),
                 decoder.status().ToString().c_str(), dtype.status().ToString().c_str());
    return 1;
  }
  engine::GpuPreprocessOptions gpu_options;
  gpu_options.preprocess = engine::PreprocessOptionsOf(package->metadata);
  gpu_options.dtype = *dtype;
  const int batch_size = absl::GetFlag(FLAGS_batch);
  const int iterations = absl::GetFlag(FLAGS_iterations);
  const int threads = absl::GetFlag(FLAGS_cpu_threads);
  std::printf("nvJPEG backend %s, batch %d, %s input, CPU path on %d threads, medians of %d\n",
              (*decoder)->backend_name().c_str(), batch_size,
              absl::GetFlag(FLAGS_precision).c_str(), threads, iterations);
  const std::vector<std::string> dirs = absl::StrSplit(absl::GetFlag(FLAGS_photos), ',');
  for (const std::string& dir : dirs) {
    double mean_bytes = 0;
    const std::vector<std::string> batch = ReadBatch(dir, batch_size, &mean_bytes);
    if (batch.empty()) continue;
    const double decode = GpuImagesPerSecond(**decoder, batch, nullptr, iterations);
    const double full = GpuImagesPerSecond(**decoder, batch, &gpu_options, iterations);
    const int gpu_threads = absl::GetFlag(FLAGS_gpu_threads);
    const double parallel = GpuParallelImagesPerSecond(batch, gpu_options, gpu_threads, iterations);
    const double cpu =
        CpuImagesPerSecond(batch, gpu_options.preprocess, threads, batch_size * 8, iterations / 3);
    std::printf(
        "%s (mean %.0f kB): GPU decode %.0f img/s, GPU decode+preprocess %.0f img/s "
        "(%d host threads: %.0f img/s aggregate), CPU decode+preprocess (%d threads) %.0f img/s, "
        "GPU/CPU %.2fx\n",
        dir.c_str(), mean_bytes / 1000, decode, full, gpu_threads, parallel, threads, cpu,
        cpu > 0 ? std::max(full, parallel) / cpu : 0);
  }
  return 0;
}
