// Google Benchmark micro-benchmarks of the CPU stages on the request path: JPEG decode (with DCT
// scaling) and preprocessing for the W1 (1600x1200) and W2 (256x256) workloads, and the explanation
// cache's hit path.
//   build/bench/cropshield-micro-benchmarks [--benchmark_filter=Decode]
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "server/cache/sharded_lru_cache.h"
#include "server/explain/render.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"

namespace {

using cropshield::cache::CacheKey;
using cropshield::cache::ShardedLruCache;
namespace image = cropshield::image;

// A smooth leaf-like gradient with texture: compresses like a photo, not like noise or a flat fill.
std::string SyntheticJpeg(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>((x * 7 + y * 3) % 97 + 40);
      p[1] = static_cast<uint8_t>(120 + ((x ^ y) & 63));
      p[2] = static_cast<uint8_t>((y * 5) % 71 + 20);
    }
  }
  return *cropshield::explain::EncodeJpeg(rgb, width, height, 90);
}

void BM_Decode(benchmark::State& state) {
  const std::string jpeg =
      SyntheticJpeg(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  image::DecodeOptions options;
  options.min_shorter_side = 256;  // as the service asks for a 256 resize
  for (auto _ : state) {
    auto decoded = image::DecodeImage(jpeg, options);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::to_string(jpeg.size()) + " bytes");
}
BENCHMARK(BM_Decode)->Args({1600, 1200})->Args({256, 256})->Unit(benchmark::kMicrosecond);

// Real photos: CROPSHIELD_BENCH_JPEG=FILE|DIR (every *.jpg in DIR, in turn; skipped when unset).
// With as many threads as cores this is the host's decode ceiling for that workload.
void BM_DecodeFile(benchmark::State& state) {
  const char* path = std::getenv("CROPSHIELD_BENCH_JPEG");
  if (path == nullptr) return state.SkipWithError("CROPSHIELD_BENCH_JPEG not set");
  std::vector<std::string> photos;
  std::vector<std::filesystem::path> files;
  if (std::filesystem::is_directory(path)) {
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.path().extension() == ".jpg") files.push_back(entry.path());
    }
  } else {
    files.emplace_back(path);
  }
  for (const auto& file : files) {
    std::ifstream in(file, std::ios::binary);
    photos.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (photos.empty()) return state.SkipWithError("no .jpg photos");
  image::DecodeOptions options;
  options.min_shorter_side = 256;
  size_t i = static_cast<size_t>(state.thread_index());
  for (auto _ : state)
    benchmark::DoNotOptimize(image::DecodeImage(photos[i++ % photos.size()], options));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::to_string(photos.size()) + " photos");
}
BENCHMARK(BM_DecodeFile)->ThreadRange(1, 16)->UseRealTime()->Unit(benchmark::kMicrosecond);
// The host's decode rate with every core busy (items_per_second, summed over threads): the
// ceiling for W1 throughput, which is decode-bound.
BENCHMARK(BM_Decode)
    ->Name("BM_DecodeAllCores")
    ->Args({1600, 1200})
    ->ThreadRange(1, 16)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_Preprocess(benchmark::State& state) {
  const std::string jpeg =
      SyntheticJpeg(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  image::DecodeOptions options;
  options.min_shorter_side = 256;
  const image::DecodedImage decoded = *image::DecodeImage(jpeg, options);
  const image::PreprocessOptions preprocess;
  std::vector<float> out(3 * 224 * 224);
  for (auto _ : state) {
    image::CropBox box;
    benchmark::DoNotOptimize(image::Preprocess(decoded, preprocess, absl::MakeSpan(out), &box));
  }
}
BENCHMARK(BM_Preprocess)->Args({1600, 1200})->Args({256, 256})->Unit(benchmark::kMicrosecond);

void BM_CacheHit(benchmark::State& state) {
  ShardedLruCache::Options options;
  options.capacity_bytes = 64 << 20;
  options.num_shards = 16;
  std::unique_ptr<ShardedLruCache> cache = *ShardedLruCache::Create(options);
  std::vector<CacheKey> keys;
  for (uint64_t i = 0; i < 1024; ++i) {
    keys.push_back(CacheKey{"cropshield-cnn", 1, i * 0x9e3779b97f4a7c15ull, i, "gradcam|k=3"});
    cache->Insert(keys.back(), std::make_shared<const std::string>(2048, 'x'));
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cache->Get(keys[i++ % keys.size()]));
  }
}
BENCHMARK(BM_CacheHit)->Threads(1)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
