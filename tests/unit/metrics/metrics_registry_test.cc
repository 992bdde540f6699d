#include "server/metrics/metrics_registry.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "server/metrics/callback_collector.h"
#include "server/metrics/state_collector.h"

namespace cropshield::metrics {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

MetricFamily Family(const std::string& name, MetricType type, int samples) {
  MetricFamily family;
  family.name = name;
  family.type = type;
  family.metric.resize(static_cast<size_t>(samples));
  return family;
}

std::vector<std::string> Names(const std::vector<MetricFamily>& families) {
  std::vector<std::string> names;
  for (const MetricFamily& family : families) names.push_back(family.name);
  return names;
}

TEST(MergeFamiliesTest, ConcatenatesSameNameDropsEmptyAndTypeClashes) {
  std::vector<MetricFamily> merged =
      MergeFamilies({Family("a", MetricType::Gauge, 1), Family("b", MetricType::Counter, 0),
                     Family("c", MetricType::Counter, 2), Family("a", MetricType::Gauge, 2),
                     Family("c", MetricType::Gauge, 5)});
  ASSERT_THAT(Names(merged), ElementsAre("a", "c"));
  EXPECT_EQ(merged[0].metric.size(), 3u);
  EXPECT_EQ(merged[1].metric.size(), 2u);
  EXPECT_EQ(merged[1].type, MetricType::Counter);
}

TEST(CallbackCollectorTest, SourcesFillDeclaredFamiliesAtCollectTime) {
  CallbackCollector collector;
  ASSERT_TRUE(collector.Declare("x_total", "help x", MetricType::Counter).ok());
  ASSERT_TRUE(collector.Declare("y", "help y", MetricType::Gauge).ok());
  ASSERT_TRUE(collector.Declare("unused", "never filled", MetricType::Gauge).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(collector.Declare("y", "again", MetricType::Gauge)));
  EXPECT_TRUE(absl::IsInvalidArgument(collector.Declare("bad name", "", MetricType::Gauge)));
  EXPECT_TRUE(absl::IsInvalidArgument(collector.Declare("h", "", MetricType::Histogram)));
  std::atomic<int> value{1};
  collector.AddSource([&value](CallbackCollector::Sink& sink) {
    sink.Add("x_total", {{"k", "v"}}, value.load());
    sink.Add("y", {}, 2.5);
    sink.Add("undeclared", {}, 1);
    sink.Add("y", {{"bad label", "v"}}, 3);  // dropped
  });
  std::vector<MetricFamily> families = collector.Collect();
  ASSERT_THAT(Names(families), ElementsAre("x_total", "y"));
  EXPECT_EQ(families[0].help, "help x");
  EXPECT_EQ(families[0].type, MetricType::Counter);
  ASSERT_EQ(families[0].metric.size(), 1u);
  EXPECT_EQ(families[0].metric[0].counter.value, 1);
  EXPECT_EQ(families[0].metric[0].label[0].name, "k");
  ASSERT_EQ(families[1].metric.size(), 1u);
  EXPECT_EQ(families[1].metric[0].gauge.value, 2.5);
  value = 7;
  EXPECT_EQ(collector.Collect()[0].metric[0].counter.value, 7);
}

TEST(MetricsRegistryTest, SerializesRegistryAndCollectablesUntilUnregistered) {
  MetricsRegistry registry;
  prometheus::BuildCounter()
      .Name("direct_total")
      .Help("d")
      .Register(registry.registry())
      .Add({})
      .Increment(3);
  auto state = std::make_shared<StateCollector>();
  state->AddInFlight([] { return 4.0; });
  state->AddQueue("executor", 256, [] { return 2.0; });
  {
    MetricsRegistry::Registration registration = registry.Add(state);
    const std::string text = registry.SerializeText();
    EXPECT_THAT(text, HasSubstr("# TYPE direct_total counter\ndirect_total 3\n"));
    EXPECT_THAT(text, HasSubstr("cropshield_requests_in_flight 4\n"));
    EXPECT_THAT(text, HasSubstr("cropshield_queue_depth{queue=\"executor\"} 2\n"));
    EXPECT_THAT(text, HasSubstr("cropshield_queue_capacity{queue=\"executor\"} 256\n"));
    // Families without samples (caches, models, GPU memory here) are left out entirely.
    EXPECT_THAT(text, Not(HasSubstr("cropshield_gpu_memory")));
    MetricsRegistry::Registration moved = std::move(registration);
    EXPECT_THAT(registry.SerializeText(), HasSubstr("cropshield_requests_in_flight 4\n"));
  }
  EXPECT_THAT(registry.SerializeText(), Not(HasSubstr("cropshield_requests_in_flight")));
  EXPECT_THAT(registry.SerializeText(), HasSubstr("direct_total 3\n"));
}

TEST(MetricsRegistryTest, TwoCollectorsShareOneFamilyWithoutDuplicateHelpLines) {
  MetricsRegistry registry;
  auto a = std::make_shared<StateCollector>();
  a->AddQueue("executor", 8, [] { return 1.0; });
  auto b = std::make_shared<StateCollector>();
  b->AddQueue("explain_batcher", 8, [] { return 0.0; });
  MetricsRegistry::Registration ra = registry.Add(a);
  MetricsRegistry::Registration rb = registry.Add(b);
  const std::string text = registry.SerializeText();
  EXPECT_THAT(text, HasSubstr("# TYPE cropshield_queue_depth gauge\n"
                              "cropshield_queue_depth{queue=\"executor\"} 1\n"
                              "cropshield_queue_depth{queue=\"explain_batcher\"} 0\n"));
  EXPECT_EQ(text.find("# TYPE cropshield_queue_depth"),
            text.rfind("# TYPE cropshield_queue_depth"));
}

TEST(MetricsRegistryTest, ResetWaitsForACollectInProgress) {
  MetricsRegistry registry;
  auto collector = std::make_shared<CallbackCollector>();
  ASSERT_TRUE(collector->Declare("slow", "", MetricType::Gauge).ok());
  absl::Notification entered;
  std::atomic<bool> finished{false};
  collector->AddSource([&](CallbackCollector::Sink& sink) {
    entered.Notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    sink.Add("slow", {}, 1);
    finished = true;
  });
  MetricsRegistry::Registration registration = registry.Add(collector);
  std::thread scrape([&] { registry.Collect(); });
  entered.WaitForNotification();
  registration.Reset();
  EXPECT_TRUE(finished.load());  // Reset returned only after the source was done
  scrape.join();
  registration.Reset();  // idempotent
}

TEST(StateCollectorTest, CachesModelsAndGpuMemory) {
  MetricsRegistry registry;
  auto state = std::make_shared<StateCollector>();
  state->AddCache("explain", [] {
    StateCollector::CacheCounters c;
    c.hits = 3;
    c.misses = 5;
    c.evictions = 1;
    c.inserts = 4;
    c.entries = 2;
    c.bytes = 1000;
    c.capacity_bytes = 4096;
    return c;
  });
  state->AddModels([] {
    return std::vector<StateCollector::ModelInfo>{{"tiny", 2, "cpu", "fp32", 0.5, 1.25}};
  });
  state->AddGpuMemory([] {
    return std::vector<StateCollector::GpuMemory>{{"cuda:0", 1024, 2048}};
  });
  MetricsRegistry::Registration registration = registry.Add(state);
  const std::string text = registry.SerializeText();
  EXPECT_THAT(text, HasSubstr("# TYPE cropshield_cache_hits_total counter\n"
                              "cropshield_cache_hits_total{cache=\"explain\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_cache_misses_total{cache=\"explain\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_cache_evictions_total{cache=\"explain\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_cache_expirations_total{cache=\"explain\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_cache_inserts_total{cache=\"explain\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE cropshield_cache_entries gauge\n"
                              "cropshield_cache_entries{cache=\"explain\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_cache_bytes{cache=\"explain\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_cache_capacity_bytes{cache=\"explain\"} 4096\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_model_info{device=\"cpu\",model=\"tiny\","
                              "precision=\"fp32\",version=\"2\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_model_load_seconds{model=\"tiny\",version=\"2\"} 0.5\n"));
  EXPECT_THAT(text,
              HasSubstr("cropshield_model_warmup_seconds{model=\"tiny\",version=\"2\"} 1.25\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_gpu_memory_allocated_bytes{device=\"cuda:0\"} 1024\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_gpu_memory_reserved_bytes{device=\"cuda:0\"} 2048\n"));
}

}  // namespace
}  // namespace cropshield::metrics
