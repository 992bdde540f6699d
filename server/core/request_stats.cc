#include "server/core/request_stats.h"

#include "absl/time/clock.h"

namespace cropshield::core {
namespace {

void AddSummary(const char* name, const LatencyWindow& window, absl::Time now,
                cropshield::v1::LatencySummary* out) {
  LatencyWindow::Summary s = window.Summarize(now);
  out->set_name(name);
  out->set_count(s.count);
  out->set_p50_us(s.p50_us);
  out->set_p90_us(s.p90_us);
  out->set_p99_us(s.p99_us);
}

}  // namespace

RequestStats::RequestStats() : start_(absl::Now()) {}

void RequestStats::RecordCall(Rpc rpc, absl::StatusCode code, int64_t total_us) {
  const int index = static_cast<int>(rpc);
  rpc_latency_[index].Record(total_us, absl::Now());
  absl::MutexLock lock(&mu_);
  ++totals_[index];
  if (code != absl::StatusCode::kOk) ++errors_[index][absl::StatusCodeToString(code)];
}

void RequestStats::RecordStage(metrics::Stage stage, int64_t micros) {
  stage_latency_[static_cast<int>(stage)].Record(micros, absl::Now());
}

void RequestStats::RecordTiming(const cropshield::v1::Timing& timing) {
  const std::array<int64_t, metrics::kStageCount> stages = metrics::StageMicros(timing);
  for (int stage = 0; stage < metrics::kStageCount; ++stage) {
    if (stages[stage] > 0) RecordStage(static_cast<metrics::Stage>(stage), stages[stage]);
  }
}

void RequestStats::Fill(cropshield::v1::StatsResponse* response) const {
  const absl::Time now = absl::Now();
  response->set_uptime_seconds(absl::ToDoubleSeconds(now - start_));
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < kRpcs; ++i) {
      cropshield::v1::RpcCounts* counts = response->add_rpcs();
      counts->set_rpc(kRpcNames[i]);
      counts->set_total(totals_[i]);
      for (const auto& [code, n] : errors_[i]) (*counts->mutable_errors_by_code())[code] = n;
    }
  }
  for (int i = 0; i < kRpcs; ++i) {
    AddSummary(kRpcNames[i], rpc_latency_[i], now, response->add_rpc_latency());
  }
  for (int i = 0; i < metrics::kStageCount; ++i) {
    AddSummary(metrics::kStageNames[i], stage_latency_[i], now, response->add_stage_latency());
  }
}

}  // namespace cropshield::core
