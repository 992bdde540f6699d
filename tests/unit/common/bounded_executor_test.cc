#include "common/bounded_executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace cropshield {
namespace {

TEST(BoundedExecutorTest, RunsTasksRejectsWhenFullAndDrainsOnShutdown) {
  auto executor = BoundedExecutor::Create({/*threads=*/1, /*queue_capacity=*/2});
  ASSERT_TRUE(executor.ok());
  absl::Notification started, release;
  std::atomic<int> ran{0};
  ASSERT_TRUE((*executor)->TrySubmit([&] {
    started.Notify();
    release.WaitForNotification();
    ++ran;
  }));
  started.WaitForNotification();
  EXPECT_TRUE((*executor)->TrySubmit([&] { ++ran; }));
  EXPECT_TRUE((*executor)->TrySubmit([&] { ++ran; }));
  EXPECT_FALSE((*executor)->TrySubmit([&] { ++ran; }));
  EXPECT_EQ((*executor)->QueueDepth(), 2u);
  release.Notify();
  (*executor)->Shutdown();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_FALSE((*executor)->TrySubmit([] {}));
}

TEST(BoundedExecutorTest, RejectsBadOptions) {
  EXPECT_FALSE(BoundedExecutor::Create({0, 1}).ok());
  EXPECT_FALSE(BoundedExecutor::Create({1, 0}).ok());
}

}  // namespace
}  // namespace cropshield
