// One measured step of `cropshield bench` (a concurrency level or an arrival rate) and the
// thread-safe recorder its calls report to.
//
// Thread safety: CallRecorder's methods may be called from any number of threads at once (gRPC's
// callback threads record, the progress line reads). StepResult and Summarize are plain values and
// functions.
#ifndef CROPSHIELD_CLIENT_BENCH_STEP_RESULT_H_
#define CROPSHIELD_CLIENT_BENCH_STEP_RESULT_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/support/status.h"

namespace cropshield::bench {

struct LatencySummary {
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0, mean_ms = 0;
};

// Nearest-rank percentiles of `latencies_ms` (any order); zeros when empty.
LatencySummary Summarize(std::vector<double> latencies_ms);

struct OpenLoopCounts {
  double target_rate = 0;  // requests/s asked for
  int64_t scheduled = 0;   // arrivals in the measured window
  int64_t sent = 0;        // of those, calls issued
  int64_t late = 0;        // sent >= 1 ms after their scheduled time (a slot wait or a slow sender)
  int64_t delayed = 0;     // waited for a slot: max_outstanding calls were in flight
  int64_t dropped = 0;     // never sent: still waiting for a slot when the step ended
  double sent_rate = 0;    // sent / measured window: the achieved request rate
  double max_send_lag_ms = 0;  // latest send against schedule
  int max_outstanding = 0;
};

struct StepResult {
  std::string mode;  // "closed" (concurrency) or "open" (rate)
  std::string rpc;
  int concurrency = 0;   // closed loop
  OpenLoopCounts open;   // open loop
  int64_t requests = 0;  // measured calls completed (ok + errors)
  int64_t ok = 0;
  std::map<std::string, int64_t> errors;  // gRPC code name -> calls
  double seconds = 0;                     // measured window until the last measured reply
  double throughput = 0;                  // ok / seconds
  LatencySummary latency;                 // of the ok calls

  int64_t error_count() const;
  std::string Label() const;  // "c8" or "20/s"
};

// Where a step's measured calls report: latency of successful calls, errors by code.
class CallRecorder {
 public:
  void Record(const grpc::Status& status, double latency_ms);
  int64_t completed() const { return completed_.load(); }
  int64_t errors() const { return errors_.load(); }
  // Fills requests, ok, errors and latency of `result`.
  void FillResult(StepResult* result);

 private:
  std::atomic<int64_t> completed_{0};
  std::atomic<int64_t> errors_{0};
  absl::Mutex mu_;
  std::vector<double> latencies_ms_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> errors_by_code_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_STEP_RESULT_H_
