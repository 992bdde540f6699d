// ByteBudget, ExpiryWatch and log escaping: the building blocks of issue #20's bounds.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/byte_budget.h"
#include "common/expiry_watch.h"
#include "common/log.h"
#include "gtest/gtest.h"

namespace cropshield {
namespace {

TEST(ByteBudgetTest, ReservationsStayWithinCapacityAndReleaseOnDestruction) {
  ByteBudget budget(100);
  std::optional<ByteBudget::Reservation> a = budget.TryReserve(60);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(budget.used(), 60);
  EXPECT_FALSE(budget.TryReserve(41).has_value());
  EXPECT_EQ(budget.refused(), 1);
  std::optional<ByteBudget::Reservation> b = budget.TryReserve(40);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(budget.used(), 100);
  ByteBudget::Reservation moved = *std::move(a);
  a.reset();
  EXPECT_EQ(budget.used(), 100) << "a moved-from reservation releases nothing";
  moved.Release();
  EXPECT_EQ(budget.used(), 40);
  b.reset();
  EXPECT_EQ(budget.used(), 0);
}

TEST(ByteBudgetTest, UnlimitedBudgetCountsButNeverRefuses) {
  ByteBudget budget(0);
  std::optional<ByteBudget::Reservation> big = budget.TryReserve(int64_t{1} << 40);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(budget.used(), int64_t{1} << 40);
}

TEST(ByteBudgetTest, ConcurrentReservationsNeverOvershoot) {
  ByteBudget budget(1000);
  std::atomic<int64_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        std::optional<ByteBudget::Reservation> r = budget.TryReserve(7);
        const int64_t used = budget.used();
        int64_t seen = max_seen.load();
        while (used > seen && !max_seen.compare_exchange_weak(seen, used)) {
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_LE(max_seen.load(), 1000);
  EXPECT_EQ(budget.used(), 0);
}

ExpiryWatch::Options FastWatch(absl::Duration timeout) {
  ExpiryWatch::Options options;
  options.timeout = timeout;
  options.check_period = absl::Milliseconds(10);
  return options;
}

TEST(ExpiryWatchTest, RunsTheActionOfEntriesStillWatchedAfterTheTimeout) {
  auto watch = ExpiryWatch::Create(FastWatch(absl::Milliseconds(50)));
  ASSERT_TRUE(watch.ok()) << watch.status();
  absl::Notification fired;
  std::atomic<int> forgotten_runs{0};
  int expiring = 0;
  int forgotten = 0;
  (*watch)->Watch(&expiring, [&fired] { fired.Notify(); });
  (*watch)->Watch(&forgotten, [&forgotten_runs] { forgotten_runs.fetch_add(1); });
  (*watch)->Forget(&forgotten);
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(forgotten_runs.load(), 0);
  EXPECT_EQ((*watch)->expired(), 1);
}

TEST(ExpiryWatchTest, ActionMayForgetItsOwnKeyAndForgetWaitsForARunningAction) {
  auto watch = ExpiryWatch::Create(FastWatch(absl::Milliseconds(10)));
  ASSERT_TRUE(watch.ok());
  int key = 0;
  absl::Notification started;
  absl::Notification release;
  std::atomic<bool> action_done{false};
  ExpiryWatch* raw = watch->get();
  raw->Watch(&key, [&] {
    started.Notify();
    release.WaitForNotification();
    raw->Forget(&key);  // as a reactor's OnDone would, on the watch's own thread
    action_done = true;
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(5)));
  std::thread forgetter([&] {
    raw->Forget(&key);
    EXPECT_TRUE(action_done.load()) << "Forget returned while the action was running";
  });
  absl::SleepFor(absl::Milliseconds(50));
  release.Notify();
  forgetter.join();
}

TEST(ExpiryWatchTest, RejectsNonPositiveDurations) {
  EXPECT_FALSE(ExpiryWatch::Create(FastWatch(absl::ZeroDuration())).ok());
}

TEST(LogEscapeTest, ControlCharactersCannotSplitOrForgeLines) {
  std::string out;
  AppendEscapedForLog("id=a\n2026-12-04T00:00:00.000Z I SERVING\r\t\\ \x01\x7f caf\xc3\xa9", &out);
  EXPECT_EQ(out, "id=a\\n2026-12-04T00:00:00.000Z I SERVING\\r\\x09\\\\ \\x01\\x7f caf\xc3\xa9");
  EXPECT_EQ(out.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace cropshield
