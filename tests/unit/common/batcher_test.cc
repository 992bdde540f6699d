#include "common/batcher.h"

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace cropshield {
namespace {

struct Recorder {
  absl::Mutex mu;
  std::vector<std::vector<int>> batches ABSL_GUARDED_BY(mu);
  int jobs ABSL_GUARDED_BY(mu) = 0;

  void Add(std::vector<int> batch) {
    absl::MutexLock lock(&mu);
    jobs += static_cast<int>(batch.size());
    batches.push_back(std::move(batch));
  }
  void WaitForJobs(int n) {
    std::pair<Recorder*, int> arg(this, n);  // on the stack: Await returns before it goes away
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](std::pair<Recorder*, int>* a)
             ABSL_NO_THREAD_SAFETY_ANALYSIS { return a->first->jobs >= a->second; },
        &arg));
  }
};

TEST(BatcherTest, ClosesABatchWhenItIsFull) {
  Recorder recorder;
  absl::Notification release;
  Batcher<int>::Options options;
  options.max_batch_size = 4;
  options.max_delay = absl::Seconds(30);  // never reached: size closes the batch
  auto batcher =
      Batcher<int>::Create(options, [&](std::vector<int> b) { recorder.Add(std::move(b)); });
  ASSERT_TRUE(batcher.ok());
  const absl::Time start = absl::Now();
  for (int i = 0; i < 8; ++i) ASSERT_TRUE((*batcher)->TrySubmit(i));
  recorder.WaitForJobs(8);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  absl::MutexLock lock(&recorder.mu);
  ASSERT_EQ(recorder.batches.size(), 2u);
  EXPECT_EQ(recorder.batches[0], (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(recorder.batches[1], (std::vector<int>{4, 5, 6, 7}));
}

TEST(BatcherTest, ClosesAPartialBatchAfterTheDelay) {
  Recorder recorder;
  Batcher<int>::Options options;
  options.max_batch_size = 16;
  // Far longer than the gap between the two submits may get: with 50 ms, TSan on a loaded 2-core
  // machine once closed the batch between them (two batches of one).
  options.max_delay = absl::Milliseconds(250);
  auto batcher =
      Batcher<int>::Create(options, [&](std::vector<int> b) { recorder.Add(std::move(b)); });
  ASSERT_TRUE(batcher.ok());
  const absl::Time start = absl::Now();
  ASSERT_TRUE((*batcher)->TrySubmit(1));
  ASSERT_TRUE((*batcher)->TrySubmit(2));
  recorder.WaitForJobs(2);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(245));
  absl::MutexLock lock(&recorder.mu);
  ASSERT_EQ(recorder.batches.size(), 1u);
  EXPECT_EQ(recorder.batches[0], (std::vector<int>{1, 2}));
}

TEST(BatcherTest, FullQueueRejectsAtOnceAndShutdownDrains) {
  absl::Notification entered;
  absl::Notification release;
  std::atomic<int> processed{0};
  Batcher<int>::Options options;
  options.max_batch_size = 1;
  options.queue_capacity = 2;
  auto batcher = Batcher<int>::Create(options, [&](std::vector<int> b) {
    if (b[0] == 0) {
      entered.Notify();
      release.WaitForNotification();
    }
    processed += static_cast<int>(b.size());
  });
  ASSERT_TRUE(batcher.ok());
  ASSERT_TRUE((*batcher)->TrySubmit(0));
  entered.WaitForNotification();  // the only thread is now busy
  EXPECT_TRUE((*batcher)->TrySubmit(1));
  EXPECT_TRUE((*batcher)->TrySubmit(2));
  EXPECT_FALSE((*batcher)->TrySubmit(3));
  EXPECT_EQ((*batcher)->QueueDepth(), 2u);
  release.Notify();
  (*batcher)->Shutdown();
  EXPECT_EQ(processed.load(), 3);
  EXPECT_FALSE((*batcher)->TrySubmit(4));
}

TEST(BatcherTest, TwoThreadsRunTwoBatchesAtOnce) {
  absl::Mutex mu;
  int entered = 0;
  int running = 0;
  int most_at_once = 0;
  Batcher<int>::Options options;
  options.max_batch_size = 1;
  options.threads = 2;
  auto batcher = Batcher<int>::Create(options, [&](std::vector<int>) {
    absl::MutexLock lock(&mu);
    ++entered;
    most_at_once = std::max(most_at_once, ++running);
    // Hold this batch until the other one has started too (or give up after 10 s).
    mu.AwaitWithTimeout(absl::Condition(
                            +[](int* n) { return *n >= 2; }, &entered),
                        absl::Seconds(10));
    --running;
  });
  ASSERT_TRUE(batcher.ok());
  ASSERT_TRUE((*batcher)->TrySubmit(1));
  ASSERT_TRUE((*batcher)->TrySubmit(2));
  (*batcher)->Shutdown();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(most_at_once, 2);
}

TEST(BatcherTest, ThreadsWaitingOnOneBatchNeverRunAnEmptyOne) {
  Recorder recorder;
  Batcher<int>::Options options;
  options.max_batch_size = 2;
  options.max_delay = absl::Seconds(30);  // both threads wait for the batch to fill
  options.threads = 2;
  auto batcher =
      Batcher<int>::Create(options, [&](std::vector<int> b) { recorder.Add(std::move(b)); });
  ASSERT_TRUE(batcher.ok());
  ASSERT_TRUE((*batcher)->TrySubmit(1));
  absl::SleepFor(absl::Milliseconds(100));  // let both threads start waiting on the first job
  ASSERT_TRUE((*batcher)->TrySubmit(2));
  recorder.WaitForJobs(2);
  (*batcher)->Shutdown();
  absl::MutexLock lock(&recorder.mu);
  ASSERT_EQ(recorder.batches.size(), 1u);
  EXPECT_EQ(recorder.batches[0], (std::vector<int>{1, 2}));
}

TEST(BatcherTest, RejectsBadOptions) {
  Batcher<int>::Options options;
  options.max_batch_size = 0;
  EXPECT_FALSE(Batcher<int>::Create(options, [](std::vector<int>) {}).ok());
  options.max_batch_size = 1;
  EXPECT_FALSE(Batcher<int>::Create(options, nullptr).ok());
}

}  // namespace
}  // namespace cropshield
