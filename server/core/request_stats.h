// Live request statistics for the Stats RPC: calls and errors per RPC, and latency percentiles
// over a sliding window per RPC and per stage.
//
// Thread-safety: all methods may be called concurrently.
#ifndef CROPSHIELD_SERVER_CORE_REQUEST_STATS_H_
#define CROPSHIELD_SERVER_CORE_REQUEST_STATS_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/latency_window.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/rpc.h"
#include "server/metrics/stages.h"

namespace cropshield::core {

class RequestStats {
 public:
  RequestStats();

  void RecordCall(Rpc rpc, absl::StatusCode code, int64_t total_us);
  void RecordStage(metrics::Stage stage, int64_t micros);
  // Records every non-zero stage of a response's timing.
  void RecordTiming(const cropshield::v1::Timing& timing);

  // Fills uptime, rpcs, rpc_latency and stage_latency.
  void Fill(cropshield::v1::StatsResponse* response) const;

 private:
  static constexpr int kRpcs = kRpcCount;
  const absl::Time start_;
  std::array<LatencyWindow, kRpcs> rpc_latency_;
  std::array<LatencyWindow, metrics::kStageCount> stage_latency_;
  mutable absl::Mutex mu_;
  std::array<int64_t, kRpcs> totals_ ABSL_GUARDED_BY(mu_) = {};
  std::array<std::map<std::string, int64_t>, kRpcs> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_REQUEST_STATS_H_
