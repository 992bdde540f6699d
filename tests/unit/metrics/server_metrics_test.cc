#include "server/metrics/server_metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "cropshield/v1/cropshield.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "server/metrics/metrics_registry.h"

namespace cropshield::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

const MetricFamily* Find(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const MetricFamily& family : families) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

// The series of `family` whose labels include every pair of `labels`.
const ClientMetric* Series(const MetricFamily* family,
                           const std::vector<std::pair<std::string, std::string>>& labels) {
  if (family == nullptr) return nullptr;
  for (const ClientMetric& metric : family->metric) {
    bool all = true;
    for (const auto& [name, value] : labels) {
      bool found = false;
      for (const auto& label : metric.label) found |= label.name == name && label.value == value;
      all &= found;
    }
    if (all) return &metric;
  }
  return nullptr;
}

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerMetrics::Options options;
    options.rpcs = {"Predict", "Explain"};
    options.queues = {"executor", "explain_batcher"};
    options.batchers = {"explain"};
    options.max_batch_size = 32;
    auto created = ServerMetrics::Create(options, &registry_.registry());
    ASSERT_TRUE(created.ok()) << created.status();
    metrics_ = *std::move(created);
  }

  MetricsRegistry registry_;
  std::unique_ptr<ServerMetrics> metrics_;
};

TEST(ServerMetricsBucketsTest, LatencyBucketsSpan100MicrosecondsTo10Seconds) {
  const std::vector<double> buckets = ServerMetrics::LatencyBuckets();
  EXPECT_THAT(buckets,
              ElementsAreArray<double>({0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}));
  for (size_t i = 1; i < buckets.size(); ++i) EXPECT_LT(buckets[i - 1], buckets[i]);
}

TEST(ServerMetricsBucketsTest, BatchSizeBucketsCoverTheLargestBatch) {
  EXPECT_THAT(ServerMetrics::BatchSizeBuckets(1), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(ServerMetrics::BatchSizeBuckets(8), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(ServerMetrics::BatchSizeBuckets(9), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 16));
  EXPECT_THAT(ServerMetrics::BatchSizeBuckets(100),
              ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128));
}

TEST_F(ServerMetricsTest, SeriesNamedInOptionsExistAtZero) {
  const std::vector<MetricFamily> families = registry_.Collect();
  const ClientMetric* predict =
      Series(Find(families, "cropshield_requests_total"), {{"rpc", "Predict"}, {"code", "OK"}});
  ASSERT_NE(predict, nullptr);
  EXPECT_EQ(predict->counter.value, 0);
  const ClientMetric* duration = Series(Find(families, "cropshield_request_duration_seconds"),
                                        {{"rpc", "Explain"}, {"code", "OK"}});
  ASSERT_NE(duration, nullptr);
  EXPECT_EQ(duration->histogram.sample_count, 0u);
  for (const char* queue : {"executor", "explain_batcher"}) {
    const ClientMetric* rejected =
        Series(Find(families, "cropshield_queue_rejected_total"), {{"queue", queue}});
    ASSERT_NE(rejected, nullptr) << queue;
    EXPECT_EQ(rejected->counter.value, 0);
  }
  const ClientMetric* batch =
      Series(Find(families, "cropshield_batch_size"), {{"batcher", "explain"}});
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(batch->histogram.bucket.size(), 10u + 1);                     // 1..8, 16, 32 and +Inf
  EXPECT_EQ(Find(families, "cropshield_request_errors_total"), nullptr);  // no errors yet
}

TEST_F(ServerMetricsTest, RecordCallCountsRequestsErrorsAndObservesDuration) {
  metrics_->RecordCall("Predict", absl::StatusCode::kOk, 0.0002);  // bucket 0.00025
  metrics_->RecordCall("Predict", absl::StatusCode::kOk, 0.003);   // bucket 0.005
  metrics_->RecordCall("Predict", absl::StatusCode::kOk, 20);      // only +Inf
  metrics_->RecordCall("Predict", absl::StatusCode::kInvalidArgument, 0.00005);
  const std::vector<MetricFamily> families = registry_.Collect();
  const MetricFamily* requests = Find(families, "cropshield_requests_total");
  EXPECT_EQ(Series(requests, {{"rpc", "Predict"}, {"code", "OK"}})->counter.value, 3);
  EXPECT_EQ(Series(requests, {{"rpc", "Predict"}, {"code", "INVALID_ARGUMENT"}})->counter.value, 1);
  const MetricFamily* errors = Find(families, "cropshield_request_errors_total");
  EXPECT_EQ(Series(errors, {{"rpc", "Predict"}, {"code", "INVALID_ARGUMENT"}})->counter.value, 1);
  EXPECT_EQ(Series(errors, {{"rpc", "Predict"}, {"code", "OK"}}), nullptr);

  const ClientMetric* ok = Series(Find(families, "cropshield_request_duration_seconds"),
                                  {{"rpc", "Predict"}, {"code", "OK"}});
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(ok->histogram.sample_count, 3u);
  EXPECT_DOUBLE_EQ(ok->histogram.sample_sum, 20.0032);
  ASSERT_EQ(ok->histogram.bucket.size(), 17u);  // 16 bounds and +Inf
  std::vector<uint64_t> cumulative;
  for (const auto& bucket : ok->histogram.bucket) cumulative.push_back(bucket.cumulative_count);
  EXPECT_THAT(cumulative, ElementsAre(0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3));
  EXPECT_EQ(ok->histogram.bucket[1].upper_bound, 0.00025);
  EXPECT_EQ(ok->histogram.bucket[15].upper_bound, 10);
}

TEST_F(ServerMetricsTest, RecordTimingObservesNonZeroStagesInSecondsPerModel) {
  cropshield::v1::Timing timing;
  timing.set_decode_us(4000);
  timing.set_preprocess_us(1000);
  timing.set_queue_us(50);
  timing.set_inference_us(12000);
  timing.set_explain_us(0);  // Predict: no explain, no encode
  timing.set_total_us(17100);
  metrics_->RecordTiming("tiny", timing);
  timing.set_explain_us(3000);
  timing.set_encode_us(800);
  metrics_->RecordTiming("other", timing);

  const std::vector<MetricFamily> families = registry_.Collect();  // outlives `stages`
  const MetricFamily* stages = Find(families, "cropshield_stage_duration_seconds");
  ASSERT_NE(stages, nullptr);
  auto count = [&](const std::string& model, const std::string& stage) -> int64_t {
    const ClientMetric* m = Series(stages, {{"model", model}, {"stage", stage}});
    return m == nullptr ? -1 : static_cast<int64_t>(m->histogram.sample_count);
  };
  EXPECT_EQ(count("tiny", "decode"), 1);
  EXPECT_EQ(count("tiny", "preprocess"), 1);
  EXPECT_EQ(count("tiny", "queue"), 1);
  EXPECT_EQ(count("tiny", "inference"), 1);
  EXPECT_EQ(count("tiny", "explain"), 0);  // the series exists, nothing observed
  EXPECT_EQ(count("tiny", "encode"), 0);
  EXPECT_EQ(count("other", "explain"), 1);
  EXPECT_EQ(count("other", "encode"), 1);
  EXPECT_DOUBLE_EQ(Series(stages, {{"model", "tiny"}, {"stage", "decode"}})->histogram.sample_sum,
                   0.004);
  EXPECT_DOUBLE_EQ(Series(stages, {{"model", "other"}, {"stage", "explain"}})->histogram.sample_sum,
                   0.003);
}

TEST_F(ServerMetricsTest, BatchSizesAndRejections) {
  metrics_->ObserveBatchSize("explain", 1);
  metrics_->ObserveBatchSize("explain", 3);
  metrics_->ObserveBatchSize("explain", 20);
  metrics_->CountRejected("executor");
  metrics_->CountRejected("executor");
  const std::vector<MetricFamily> families = registry_.Collect();
  const ClientMetric* batch =
      Series(Find(families, "cropshield_batch_size"), {{"batcher", "explain"}});
  EXPECT_EQ(batch->histogram.sample_count, 3u);
  EXPECT_EQ(batch->histogram.sample_sum, 24);
  EXPECT_EQ(batch->histogram.bucket[0].cumulative_count, 1u);  // le=1
  EXPECT_EQ(batch->histogram.bucket[2].cumulative_count, 2u);  // le=3
  EXPECT_EQ(batch->histogram.bucket[9].cumulative_count, 3u);  // le=32
  const MetricFamily* rejected = Find(families, "cropshield_queue_rejected_total");
  EXPECT_EQ(Series(rejected, {{"queue", "executor"}})->counter.value, 2);
  EXPECT_EQ(Series(rejected, {{"queue", "explain_batcher"}})->counter.value, 0);
}

TEST_F(ServerMetricsTest, ConcurrentRecordingLosesNothing) {
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < 1000; ++i) {
        metrics_->RecordCall(i % 2 == 0 ? "Predict" : "Stats",
                             i % 10 == 0 ? absl::StatusCode::kInternal : absl::StatusCode::kOk,
                             0.001);
        metrics_->RecordStage(t % 2 == 0 ? "a" : "b", ServerMetrics::Stage::kQueue, 0.0001);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const std::vector<MetricFamily> families = registry_.Collect();
  double total = 0;
  for (const ClientMetric& m : Find(families, "cropshield_requests_total")->metric) {
    total += m.counter.value;
  }
  EXPECT_EQ(total, 4000);
  double errors = 0;
  for (const ClientMetric& m : Find(families, "cropshield_request_errors_total")->metric) {
    errors += m.counter.value;
  }
  EXPECT_EQ(errors, 400);
  EXPECT_EQ(Series(Find(families, "cropshield_stage_duration_seconds"),
                   {{"model", "a"}, {"stage", "queue"}})
                ->histogram.sample_count,
            2000u);
}

TEST(ServerMetricsCreateTest, ValidatesArgumentsAndMergesIntoAnExistingRegistry) {
  MetricsRegistry registry;
  EXPECT_TRUE(absl::IsInvalidArgument(ServerMetrics::Create({}, nullptr).status()));
  ServerMetrics::Options bad;
  bad.max_batch_size = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(ServerMetrics::Create(bad, &registry.registry()).status()));
  // Two sets of instruments in one registry share the families (and series).
  auto first = ServerMetrics::Create({}, &registry.registry());
  auto second = ServerMetrics::Create({}, &registry.registry());
  ASSERT_TRUE(first.ok() && second.ok());
  (*first)->RecordCall("Stats", absl::StatusCode::kOk, 0.001);
  (*second)->RecordCall("Stats", absl::StatusCode::kOk, 0.001);
  EXPECT_THAT(registry.SerializeText(),
              HasSubstr("cropshield_requests_total{code=\"OK\",rpc=\"Stats\"} 2\n"));
  // A name already used by another type is an error, not an exception.
  prometheus::Registry clash;
  prometheus::BuildGauge().Name("cropshield_requests_total").Help("").Register(clash);
  EXPECT_TRUE(absl::IsInvalidArgument(ServerMetrics::Create({}, &clash).status()));
  EXPECT_THAT(registry.SerializeText(), Not(HasSubstr("cropshield_stage_duration_seconds_count")));
}

}  // namespace
}  // namespace cropshield::metrics
