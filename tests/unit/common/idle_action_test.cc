#include "common/idle_action.h"

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace cropshield {
namespace {

constexpr absl::Duration kPeriod = absl::Milliseconds(20);

// The workload the IdleAction watches, changed by the test.
struct Workload {
  std::atomic<int64_t> started{0};
  std::atomic<int64_t> in_progress{0};
  IdleAction::Probe probe() {
    return [this] { return IdleAction::Activity{started.load(), in_progress.load()}; };
  }
};

// Polls until `runs` is reached; false after 10 s (a slow sanitizer run still gets there).
bool WaitForRuns(const IdleAction& idle, int64_t runs) {
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (idle.runs() < runs) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

TEST(IdleActionTest, RunsOnceAfterStartUpThenWaitsForNewWork) {
  Workload work;
  std::atomic<int> actions{0};
  auto idle = IdleAction::Create(kPeriod, work.probe(), [&] { ++actions; });
  ASSERT_TRUE(idle.ok()) << idle.status();
  ASSERT_TRUE(WaitForRuns(**idle, 1));
  absl::SleepFor(10 * kPeriod);  // quiet, and nothing new since the last run
  EXPECT_EQ((*idle)->runs(), 1);

  work.started += 3;  // a burst of work that finished
  ASSERT_TRUE(WaitForRuns(**idle, 2));
  absl::SleepFor(10 * kPeriod);
  EXPECT_EQ((*idle)->runs(), 2);
  EXPECT_EQ(actions.load(), 2);
}

TEST(IdleActionTest, NeverRunsWhileWorkIsInProgress) {
  Workload work;
  work.started = 1;
  work.in_progress = 1;  // one long call, started before the IdleAction
  auto idle = IdleAction::Create(kPeriod, work.probe(), [] {});
  ASSERT_TRUE(idle.ok());
  absl::SleepFor(10 * kPeriod);
  EXPECT_EQ((*idle)->runs(), 0);
  work.in_progress = 0;
  EXPECT_TRUE(WaitForRuns(**idle, 1));
}

TEST(IdleActionTest, RejectsBadArguments) {
  EXPECT_FALSE(IdleAction::Create(
                   absl::ZeroDuration(), [] { return IdleAction::Activity{}; }, [] {})
                   .ok());
  EXPECT_FALSE(IdleAction::Create(kPeriod, nullptr, [] {}).ok());
  EXPECT_FALSE(IdleAction::Create(
                   kPeriod, [] { return IdleAction::Activity{}; }, nullptr)
                   .ok());
}

}  // namespace
}  // namespace cropshield
