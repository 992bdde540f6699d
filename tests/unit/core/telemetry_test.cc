// One report per call reaches both the Stats window and Prometheus, under the same names.
#include "server/core/telemetry.h"

#include <algorithm>
#include <map>
#include <string>

#include "gtest/gtest.h"

namespace cropshield::core {
namespace {

// stage label -> observations of cropshield_stage_duration_seconds for `model`.
std::map<std::string, uint64_t> PrometheusStages(const metrics::MetricsRegistry& registry,
                                                 const std::string& model) {
  std::map<std::string, uint64_t> counts;
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != "cropshield_stage_duration_seconds") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      std::string stage, series_model;
      for (const auto& label : metric.label) {
        if (label.name == "stage") stage = label.value;
        if (label.name == "model") series_model = label.value;
      }
      if (series_model == model) counts[stage] = metric.histogram.sample_count;
    }
  }
  return counts;
}

TEST(TelemetryTest, OneReportFeedsStatsAndPrometheusWithTheSameStageNames) {
  metrics::MetricsRegistry registry;
  auto telemetry = Telemetry::Create({}, &registry);
  ASSERT_TRUE(telemetry.ok()) << telemetry.status();
  cropshield::v1::Timing timing;
  timing.set_decode_us(1500);
  timing.set_inference_us(2500);
  timing.set_explain_us(700);  // Explain's Grad-CAM stage
  (*telemetry)->RecordCall(Rpc::kExplain, absl::StatusCode::kOk, 9000, "cnn", &timing);
  (*telemetry)->RecordCall(Rpc::kExplain, absl::StatusCode::kInvalidArgument, 50, "cnn", nullptr);

  cropshield::v1::StatsResponse stats;
  (*telemetry)->FillStats(&stats);
  std::map<std::string, int64_t> stats_stages;
  for (const auto& stage : stats.stage_latency()) stats_stages[stage.name()] = stage.count();
  const std::map<std::string, uint64_t> prometheus_stages = PrometheusStages(registry, "cnn");

  for (const char* stage : {"decode", "inference", "explain"}) {
    EXPECT_EQ(stats_stages[stage], 1) << stage;
    EXPECT_EQ(prometheus_stages.at(stage), 1u) << stage;
  }
  for (const char* stage : {"preprocess", "queue", "encode"}) {
    EXPECT_EQ(stats_stages[stage], 0) << stage;
    EXPECT_EQ(prometheus_stages.at(stage), 0u) << stage;
  }
  EXPECT_EQ(prometheus_stages.count("gradcam"), 0u);
  const auto explain_calls = std::find_if(stats.rpcs().begin(), stats.rpcs().end(),
                                          [](const auto& rpc) { return rpc.rpc() == "Explain"; });
  ASSERT_NE(explain_calls, stats.rpcs().end());
  EXPECT_EQ(explain_calls->total(), 2);
  EXPECT_EQ(explain_calls->errors_by_code().at("INVALID_ARGUMENT"), 1);
}

}  // namespace
}  // namespace cropshield::core
