#include "server/core/telemetry.h"

#include <utility>

namespace cropshield::core {

absl::StatusOr<std::unique_ptr<Telemetry>> Telemetry::Create(const Options& options,
                                                             metrics::MetricsRegistry* registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("telemetry needs a metrics registry");
  metrics::ServerMetrics::Options metrics_options;
  metrics_options.rpcs.assign(kRpcNames.begin(), kRpcNames.end());
  metrics_options.queues = options.queues;
  metrics_options.batchers = options.batchers;
  metrics_options.max_batch_size = options.max_batch_size;
  auto metrics = metrics::ServerMetrics::Create(metrics_options, &registry->registry());
  if (!metrics.ok()) return metrics.status();
  return std::unique_ptr<Telemetry>(new Telemetry(*std::move(metrics)));
}

void Telemetry::RecordCall(Rpc rpc, absl::StatusCode code, int64_t total_us,
                           absl::string_view model, const cropshield::v1::Timing* timing) {
  stats_.RecordCall(rpc, code, total_us);
  metrics_->RecordCall(RpcName(rpc), code, static_cast<double>(total_us) * 1e-6);
  if (timing == nullptr) return;
  stats_.RecordTiming(*timing);
  metrics_->RecordTiming(model, *timing);
}

}  // namespace cropshield::core
