// The model-only floor: forward passes through the engine (no gRPC, no decoding) at several batch
// sizes, device-synchronised (results are copied back to the host). Prints one JSON object.
//
// usage: cropshield-model-floor --model DIR [--device auto] [--precision fp32] [--batch_sizes
// 1,8,32]
//        [--iterations 20] [--explain]
#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "server/engine/model.h"
#include "server/engine/model_package.h"

ABSL_FLAG(std::string, model, "", "Model package (version dir, model dir or repository).");
ABSL_FLAG(std::string, device, "auto", "auto, cpu, cuda or cuda:N.");
ABSL_FLAG(std::string, batch_sizes, "1,2,4,8,16", "Comma-separated batch sizes to time.");
ABSL_FLAG(int, iterations, 10, "Timed forward passes per batch size (after warm-up).");
ABSL_FLAG(int, threads, 0, "Torch intra-op threads (0: number of cores).");
ABSL_FLAG(std::string, precision, "fp32", "fp32, or on CUDA fp16 / bf16.");
ABSL_FLAG(bool, explain, false, "Also time batched Grad-CAM (Explain) at each batch size.");
ABSL_FLAG(bool, cuda_graphs, true,
          "On CUDA, time Classify replaying CUDA graphs (the server's --cuda_graphs).");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using cropshield::engine::Model;
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cropshield::engine::ConfigureTorchRuntime(threads);
  std::vector<int> batch_sizes;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_batch_sizes), ',')) {
    int b = 0;
    if (absl::SimpleAtoi(part, &b) && b > 0) batch_sizes.push_back(b);
  }
  auto package = cropshield::engine::ResolveModelPackage(absl::GetFlag(FLAGS_model));
  if (!package.ok()) {
    std::cerr << package.status() << "\n";
    return 1;
  }
  cropshield::engine::ModelOptions options;
  options.package = *package;
  options.device = absl::GetFlag(FLAGS_device);
  options.precision = absl::GetFlag(FLAGS_precision);
  options.max_batch_size = *std::max_element(batch_sizes.begin(), batch_sizes.end());
  options.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  auto model = Model::Create(options);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    return 1;
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::string rows;
  for (int batch : batch_sizes) {
    std::vector<float> inputs(static_cast<size_t>(batch * (*model)->input_elements()));
    for (float& v : inputs) v = normal(rng);
    std::vector<float> probs(static_cast<size_t>(batch * (*model)->num_classes()));
    std::vector<cropshield::engine::CamRequest> cams(static_cast<size_t>(batch));
    auto time_ms = [&](auto&& fn) {
      for (int i = 0; i < 2; ++i) fn();  // specialise for this batch size first
      std::vector<double> samples;
      for (int i = 0; i < absl::GetFlag(FLAGS_iterations); ++i) {
        const auto start = std::chrono::steady_clock::now();
        fn();
        samples.push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
      }
      std::sort(samples.begin(), samples.end());
      return samples[samples.size() / 2];
    };
    const double forward_ms =
        time_ms([&] { (void)(*model)->Classify(inputs, batch, absl::MakeSpan(probs)); });
    double explain_ms = 0;
    if (absl::GetFlag(FLAGS_explain)) {
      explain_ms = time_ms([&] { (void)(*model)->Explain(inputs, cams); });
    }
    absl::StrAppend(&rows, rows.empty() ? "" : ",",
                    absl::StrFormat("{\"batch\":%d,\"forward_ms\":%.4f,\"images_per_s\":%.2f,"
                                    "\"explain_ms\":%.4f}",
                                    batch, forward_ms, 1000.0 * batch / forward_ms, explain_ms));
  }
  std::cout << absl::StrFormat(
      "{\"model\":\"%s\",\"version\":%d,\"device\":\"%s\",\"precision\":\"%s\",\"threads\":%d,"
      "\"optimized\":%s,\"cuda_graphs\":%d,\"rows\":[%s]}\n",
      (*model)->name(), (*model)->version(), (*model)->device_name(), (*model)->precision(),
      threads, (*model)->load_report().optimized ? "true" : "false",
      (*model)->load_report().cuda_graphs, rows);
  return 0;
}
