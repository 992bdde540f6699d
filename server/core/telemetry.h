// The one sink for what calls did: each finished call and its stage times are reported here once,
// and feed both the Stats window (RequestStats) and the Prometheus instruments (ServerMetrics).
//
// Thread-safety: every method may be called concurrently.
#ifndef CROPSHIELD_SERVER_CORE_TELEMETRY_H_
#define CROPSHIELD_SERVER_CORE_TELEMETRY_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/request_stats.h"
#include "server/core/rpc.h"
#include "server/metrics/metrics_registry.h"
#include "server/metrics/server_metrics.h"

namespace cropshield::core {

class Telemetry {
 public:
  // Queues and batchers whose series exist (at zero) from the start.
  struct Options {
    std::vector<std::string> queues;
    std::vector<std::string> batchers;
    int max_batch_size = 8;
  };
  // Records into `registry`, which must outlive the sink.
  static absl::StatusOr<std::unique_ptr<Telemetry>> Create(const Options& options,
                                                           metrics::MetricsRegistry* registry);

  // A finished call of `rpc`, `total_us` after it was accepted; `timing` (may be null) holds its
  // stages, labelled with `model` in Prometheus.
  void RecordCall(Rpc rpc, absl::StatusCode code, int64_t total_us, absl::string_view model,
                  const cropshield::v1::Timing* timing);
  // A submission refused by a full queue or an exhausted budget.
  void CountRejected(absl::string_view queue) { metrics_->CountRejected(queue); }
  void ObserveBatchSize(absl::string_view batcher, int size) {
    metrics_->ObserveBatchSize(batcher, size);
  }
  // Uptime, calls, errors and latency percentiles of the Stats RPC.
  void FillStats(cropshield::v1::StatsResponse* response) const { stats_.Fill(response); }

 private:
  explicit Telemetry(std::unique_ptr<metrics::ServerMetrics> metrics)
      : metrics_(std::move(metrics)) {}

  RequestStats stats_;
  const std::unique_ptr<metrics::ServerMetrics> metrics_;
};

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_TELEMETRY_H_
