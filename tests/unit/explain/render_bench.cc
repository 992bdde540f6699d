// Timings of the request-path post-processing on a 1600x1200 photo with a 14x14 map and the
// landscape center crop: PlaceOnPhoto, RenderHeatmapRgba + EncodePng, OverlayRgb + EncodeJpeg.
// Prints the median and the minimum over the runs (default 30; argv[1] overrides).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/explain/render.h"
#include "server/image/preprocess.h"

namespace cropshield::explain {
namespace {

constexpr int kWidth = 1600;
constexpr int kHeight = 1200;
constexpr int kMapSide = 14;

double ThreadCpuMillis() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// Wall-clock and thread CPU time: on a loaded machine the CPU time is the steadier figure.
void Report(const char* name, int runs, const std::function<void()>& body) {
  std::vector<double> wall;
  std::vector<double> cpu;
  body();  // warm-up
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const double cpu_start = ThreadCpuMillis();
    body();
    cpu.push_back(ThreadCpuMillis() - cpu_start);
    wall.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  std::printf("%-40s wall median %7.2f min %7.2f | cpu median %7.2f min %7.2f ms\n", name,
              wall[wall.size() / 2], wall.front(), cpu[cpu.size() / 2], cpu.front());
}

void Die(const absl::Status& status) {
  std::fprintf(stderr, "%s\n", status.ToString().c_str());
  std::exit(1);
}

int Main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 30;
  std::vector<float> cam(kMapSide * kMapSide);
  for (int y = 0; y < kMapSide; ++y) {
    for (int x = 0; x < kMapSide; ++x) {
      const double d2 = (x - 9.3) * (x - 9.3) + (y - 5.1) * (y - 5.1);
      cam[y * kMapSide + x] = static_cast<float>(0.9 * std::exp(-d2 / 10.0) + 0.05 * (x % 3));
    }
  }
  std::vector<uint8_t> photo(static_cast<size_t>(kWidth) * kHeight * 3);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      uint8_t* p = &photo[(static_cast<size_t>(y) * kWidth + x) * 3];
      p[0] = static_cast<uint8_t>(60 + 40 * std::sin(x * 0.01));
      p[1] = static_cast<uint8_t>(120 + 60 * std::sin(y * 0.013 + x * 0.002));
      p[2] = static_cast<uint8_t>(40 + ((x * 7 + y * 13) % 50));
    }
  }
  image::CropBox box;
  box.x = 200;
  box.y = 0;
  box.width = 1200;
  box.height = 1200;

  absl::StatusOr<PhotoMap> map = PlaceOnPhoto(cam, kMapSide, kMapSide, box, kWidth, kHeight);
  if (!map.ok()) Die(map.status());
  const std::vector<uint8_t> rgba = RenderHeatmapRgba(*map, Colormap::kJet);
  absl::StatusOr<std::string> png = EncodePng(rgba, kWidth, kHeight, 4);
  if (!png.ok()) Die(png.status());
  absl::StatusOr<std::vector<uint8_t>> overlay = OverlayRgb(photo, *map, Colormap::kJet, 0.45f);
  if (!overlay.ok()) Die(overlay.status());
  absl::StatusOr<std::string> jpeg = EncodeJpeg(*overlay, kWidth, kHeight, 85);
  if (!jpeg.ok()) Die(jpeg.status());
  std::printf(
      "%dx%d photo, %dx%d map, box (200, 0, 1200, 1200); heatmap PNG %zu bytes (%.1f%% of "
      "raw), overlay JPEG q85 %zu bytes\n",
      kWidth, kHeight, kMapSide, kMapSide, png->size(), 100.0 * png->size() / rgba.size(),
      jpeg->size());

  Report("PlaceOnPhoto", runs,
         [&] { (void)PlaceOnPhoto(cam, kMapSide, kMapSide, box, kWidth, kHeight); });
  Report("RenderHeatmapRgba", runs, [&] { (void)RenderHeatmapRgba(*map, Colormap::kJet); });
  Report("EncodePng (RGBA heatmap)", runs, [&] { (void)EncodePng(rgba, kWidth, kHeight, 4); });
  Report("RenderHeatmapRgba + EncodePng", runs, [&] {
    const std::vector<uint8_t> heat = RenderHeatmapRgba(*map, Colormap::kJet);
    (void)EncodePng(heat, kWidth, kHeight, 4);
  });
  Report("OverlayRgb", runs, [&] { (void)OverlayRgb(photo, *map, Colormap::kJet, 0.45f); });
  Report("EncodeJpeg (q85)", runs, [&] { (void)EncodeJpeg(*overlay, kWidth, kHeight, 85); });
  Report("OverlayRgb + EncodeJpeg (q85)", runs, [&] {
    absl::StatusOr<std::vector<uint8_t>> out = OverlayRgb(photo, *map, Colormap::kJet, 0.45f);
    (void)EncodeJpeg(*out, kWidth, kHeight, 85);
  });
  Report("all (place, heatmap PNG, overlay JPEG)", runs, [&] {
    absl::StatusOr<PhotoMap> m = PlaceOnPhoto(cam, kMapSide, kMapSide, box, kWidth, kHeight);
    (void)EncodePng(RenderHeatmapRgba(*m, Colormap::kJet), kWidth, kHeight, 4);
    absl::StatusOr<std::vector<uint8_t>> out = OverlayRgb(photo, *m, Colormap::kJet, 0.45f);
    (void)EncodeJpeg(*out, kWidth, kHeight, 85);
  });
  return 0;
}

}  // namespace
}  // namespace cropshield::explain

int main(int argc, char** argv) { return cropshield::explain::Main(argc, argv); }
