#include "client/bench/step_result.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cropshield::bench {
namespace {

double Percentile(const std::vector<double>& sorted, double q) {
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

}  // namespace

LatencySummary Summarize(std::vector<double> latencies_ms) {
  LatencySummary summary;
  if (latencies_ms.empty()) return summary;
  std::sort(latencies_ms.begin(), latencies_ms.end());
  summary.p50_ms = Percentile(latencies_ms, 0.50);
  summary.p90_ms = Percentile(latencies_ms, 0.90);
  summary.p99_ms = Percentile(latencies_ms, 0.99);
  summary.p999_ms = Percentile(latencies_ms, 0.999);
  summary.max_ms = latencies_ms.back();
  summary.mean_ms = std::accumulate(latencies_ms.begin(), latencies_ms.end(), 0.0) /
                    static_cast<double>(latencies_ms.size());
  return summary;
}

int64_t StepResult::error_count() const {
  int64_t total = 0;
  for (const auto& [code, count] : errors) total += count;
  return total;
}

std::string StepResult::Label() const {
  if (mode == "open") return absl::StrFormat("%g/s", open.target_rate);
  return absl::StrCat("c", concurrency);
}

void CallRecorder::Record(const grpc::Status& status, double latency_ms) {
  {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      latencies_ms_.push_back(latency_ms);
    } else {
      ++errors_by_code_[absl::StatusCodeToString(
          static_cast<absl::StatusCode>(status.error_code()))];
      errors_.fetch_add(1);
    }
  }
  completed_.fetch_add(1);
}

void CallRecorder::FillResult(StepResult* result) {
  absl::MutexLock lock(&mu_);
  result->requests = completed_.load();
  result->ok = static_cast<int64_t>(latencies_ms_.size());
  result->errors = errors_by_code_;
  result->latency = Summarize(latencies_ms_);
  result->throughput = result->seconds > 0 ? result->ok / result->seconds : 0;
}

}  // namespace cropshield::bench
