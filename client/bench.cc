#include "client/bench.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "cropshield/v1/cropshield.grpc.pb.h"

namespace cropshield::client {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::vector<std::string> LoadImages(const std::string& path, std::string* error) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& entry : fs::directory_iterator(path, ec)) {
      const std::string ext = entry.path().extension().string();
      if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".webp" || ext == ".JPG") {
        files.push_back(entry.path().string());
      }
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  std::vector<std::string> images;
  for (const std::string& file : files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      *error = "cannot read " + file;
      return {};
    }
    std::ostringstream data;
    data << in.rdbuf();
    images.push_back(data.str());
  }
  if (images.empty()) *error = "no images in " + path;
  return images;
}

double Percentile(std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

// Shared state of one run. Each slot issues its next call from the previous call's callback, so
// a slot's own fields are never touched by two threads at once.
class LoadRun {
 public:
  LoadRun(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
          std::vector<std::string> images, const BenchOptions& options)
      : images_(std::move(images)), explain_(options.rpc == "explain"), options_(options) {
    for (const auto& channel : channels) {
      stubs_.push_back(cropshield::v1::CropShieldService::NewStub(channel));
    }
  }

  void Start(int concurrency, Clock::time_point measure_from, Clock::time_point stop_at,
             int64_t max_requests) {
    measure_from_ = measure_from;
    stop_at_ = stop_at;
    max_requests_ = max_requests;
    slots_.resize(static_cast<size_t>(concurrency));
    for (int i = 0; i < concurrency; ++i) {
      slots_[i].index = i;
      active_.fetch_add(1);
      Issue(&slots_[i]);
    }
  }

  void WaitDone() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::atomic<int>* active) { return active->load() == 0; }, &active_));
  }

  int64_t measured() const { return measured_.load(); }
  int64_t errors() const { return errors_.load(); }
  std::vector<double> TakeLatencies() {
    absl::MutexLock lock(&mu_);
    return latencies_ms_;
  }
  std::map<std::string, int64_t> ErrorsByCode() {
    absl::MutexLock lock(&mu_);
    return errors_by_code_;
  }

 private:
  struct Slot {
    int index = 0;
    int64_t sent = 0;
    Clock::time_point started;
    std::unique_ptr<grpc::ClientContext> context;
    cropshield::v1::PredictRequest predict_request;
    cropshield::v1::PredictResponse predict_response;
    cropshield::v1::ExplainRequest explain_request;
    cropshield::v1::ExplainResponse explain_response;
  };

  bool ShouldStop() {
    if (Clock::now() >= stop_at_) return true;
    return max_requests_ > 0 && measured_.load() + in_measure_.load() >= max_requests_;
  }

  void Issue(Slot* slot) {
    if (ShouldStop()) {
      absl::MutexLock lock(&mu_);
      active_.fetch_sub(1);
      return;
    }
    const std::string& image = images_[(slot->index + slot->sent * slots_.size()) % images_.size()];
    ++slot->sent;
    slot->context = std::make_unique<grpc::ClientContext>();
    slot->context->set_deadline(std::chrono::system_clock::now() +
                                std::chrono::milliseconds(options_.deadline_ms));
    slot->started = Clock::now();
    const bool counted = slot->started >= measure_from_;
    if (counted) in_measure_.fetch_add(1);
    auto done = [this, slot, counted](grpc::Status status) {
      const double ms =
          std::chrono::duration<double, std::milli>(Clock::now() - slot->started).count();
      if (counted) {
        in_measure_.fetch_sub(1);
        absl::MutexLock lock(&mu_);
        if (status.ok()) {
          latencies_ms_.push_back(ms);
        } else {
          ++errors_by_code_[absl::StatusCodeToString(
              static_cast<absl::StatusCode>(status.error_code()))];
          errors_.fetch_add(1);
        }
        measured_.fetch_add(1);
      }
      Issue(slot);
    };
    if (explain_) {
      slot->explain_request.mutable_image()->set_data(image);
      slot->explain_request.set_bypass_cache(options_.bypass_cache);
      *slot->explain_request.mutable_model() = options_.model;
      slot->explain_response.Clear();
      stubs_[slot->index % stubs_.size()]->async()->Explain(
          slot->context.get(), &slot->explain_request, &slot->explain_response, done);
    } else {
      slot->predict_request.mutable_image()->set_data(image);
      slot->predict_request.set_top_k(options_.top_k);
      *slot->predict_request.mutable_model() = options_.model;
      slot->predict_response.Clear();
      stubs_[slot->index % stubs_.size()]->async()->Predict(
          slot->context.get(), &slot->predict_request, &slot->predict_response, done);
    }
  }

  std::vector<std::unique_ptr<cropshield::v1::CropShieldService::Stub>> stubs_;
  const std::vector<std::string> images_;
  const bool explain_;
  const BenchOptions& options_;
  std::vector<Slot> slots_;
  Clock::time_point measure_from_;
  Clock::time_point stop_at_;
  int64_t max_requests_ = 0;
  std::atomic<int> active_{0};
  std::atomic<int64_t> measured_{0};
  std::atomic<int64_t> in_measure_{0};
  std::atomic<int64_t> errors_{0};
  absl::Mutex mu_;
  std::vector<double> latencies_ms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> errors_by_code_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

int RunBench(const std::function<std::shared_ptr<grpc::Channel>(int)>& make_channel,
             const BenchOptions& options) {
  const std::string& rpc = options.rpc;
  if (rpc != "predict" && rpc != "explain") {
    std::cerr << "bench: --rpc must be predict or explain\n";
    return 2;
  }
  const int concurrency = options.concurrency;
  if (concurrency < 1 || options.images.empty()) {
    std::cerr << "bench: needs --images DIR|FILE and --concurrency >= 1\n";
    return 2;
  }
  std::string error;
  std::vector<std::string> images = LoadImages(options.images, &error);
  if (images.empty()) {
    std::cerr << "bench: " << error << "\n";
    return 2;
  }
  const int64_t requests = options.requests;
  const auto start = Clock::now();
  const auto measure_from =
      start + std::chrono::microseconds(static_cast<int64_t>(options.warmup_s * 1e6));
  const auto stop_at =
      requests > 0 ? start + std::chrono::hours(24)
                   : measure_from +
                         std::chrono::microseconds(static_cast<int64_t>(options.duration_s * 1e6));
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, options.connections); ++i) {
    channels.push_back(make_channel(i));
  }
  LoadRun run(channels, std::move(images), options);
  run.Start(concurrency, measure_from, stop_at, requests);
  std::atomic<bool> finished{false};
  std::thread progress([&] {
    int64_t last = 0;
    while (!finished.load()) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      if (finished.load() || !options.progress) continue;
      const int64_t now = run.measured();
      std::cerr << absl::StrFormat("\r[%5.1f s] %s: %d calls measured, %d/s, %d errors   ",
                                   std::chrono::duration<double>(Clock::now() - start).count(),
                                   Clock::now() < measure_from ? "warming up" : "measuring", now,
                                   now - last, run.errors())
                << std::flush;
      last = now;
    }
  });
  run.WaitDone();
  const auto end = Clock::now();
  finished = true;
  progress.join();
  if (options.progress) std::cerr << "\n";

  std::vector<double> latencies = run.TakeLatencies();
  std::sort(latencies.begin(), latencies.end());
  const double seconds = std::chrono::duration<double>(end - std::max(measure_from, start)).count();
  const int64_t ok = static_cast<int64_t>(latencies.size());
  const double throughput = seconds > 0 ? ok / seconds : 0;
  const double p50 = Percentile(latencies, 0.50), p90 = Percentile(latencies, 0.90),
               p99 = Percentile(latencies, 0.99), p999 = Percentile(latencies, 0.999),
               max = latencies.empty() ? 0 : latencies.back();
  std::map<std::string, int64_t> errors = run.ErrorsByCode();
  std::string error_text;
  for (const auto& [code, n] : errors) absl::StrAppend(&error_text, code, "=", n, " ");
  std::cout << absl::StrFormat(
      "%s x%d: %d ok in %.2f s = %.1f/s; latency ms p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max "
      "%.2f; errors: %s\n",
      rpc, concurrency, ok, seconds, throughput, p50, p90, p99, p999, max,
      error_text.empty() ? "none" : error_text);
  if (const std::string& path = options.json_path; !path.empty()) {
    std::string error_json;
    for (const auto& [code, n] : errors) {
      absl::StrAppend(&error_json, error_json.empty() ? "" : ",", "\"", code, "\":", n);
    }
    std::ofstream out(path);
    out << absl::StrFormat(
        "{\"rpc\":\"%s\",\"concurrency\":%d,\"ok\":%d,\"seconds\":%.4f,\"throughput\":%.3f,"
        "\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,"
        "\"errors\":{%s}}\n",
        rpc, concurrency, ok, seconds, throughput, p50, p90, p99, p999, max, error_json);
    if (!out) {
      std::cerr << "bench: cannot write " << path << "\n";
      return 1;
    }
  }
  return errors.empty() ? 0 : 1;
}

}  // namespace cropshield::client
