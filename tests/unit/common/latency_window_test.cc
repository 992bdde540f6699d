#include "common/latency_window.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace cropshield {
namespace {

TEST(LatencyWindowTest, NearestRankPercentiles) {
  LatencyWindow window(1000, absl::Minutes(5));
  const absl::Time now = absl::FromUnixSeconds(1000);
  for (int i = 1; i <= 100; ++i) window.Record(i, now);
  LatencyWindow::Summary s = window.Summarize(now);
  EXPECT_EQ(s.count, 100);
  EXPECT_EQ(s.p50_us, 50);
  EXPECT_EQ(s.p90_us, 90);
  EXPECT_EQ(s.p99_us, 99);
}

TEST(LatencyWindowTest, KeepsOnlyRecentAndLastCapacitySamples) {
  LatencyWindow window(10, absl::Seconds(60));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 5; ++i) window.Record(1'000'000, t0);
  for (int i = 0; i < 10; ++i) window.Record(7, t0 + absl::Seconds(30));
  EXPECT_EQ(window.Summarize(t0 + absl::Seconds(30)).p99_us, 7);  // old ones overwritten
  EXPECT_EQ(window.Summarize(t0 + absl::Seconds(120)).count, 0);  // all too old
}

}  // namespace
}  // namespace cropshield
