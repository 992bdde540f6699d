// A dynamic batcher: jobs wait in a bounded queue; a batch closes when it holds max_batch_size jobs
// or when the oldest job in it has waited max_delay, whichever comes first, and is handed to the
// run function on one of the batcher's threads (several threads run several batches at once).
//
// Thread-safety: TrySubmit, QueueDepth and Shutdown may be called from any thread. The run
// function is called on the batcher's threads, one non-empty batch per call; it owns the jobs and
// must not call Shutdown.
#ifndef CROPSHIELD_COMMON_BATCHER_H_
#define CROPSHIELD_COMMON_BATCHER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cropshield {

template <typename Job>
class Batcher {
 public:
  struct Options {
    int max_batch_size = 8;
    absl::Duration max_delay = absl::ZeroDuration();  // 0: take what is queued, never wait
    size_t queue_capacity = 256;
    int threads = 1;
  };
  using RunBatch = std::function<void(std::vector<Job>)>;

  static absl::StatusOr<std::unique_ptr<Batcher>> Create(Options options, RunBatch run) {
    if (options.max_batch_size < 1 || options.threads < 1 || options.queue_capacity < 1 ||
        options.max_delay < absl::ZeroDuration() || !run) {
      return absl::InvalidArgumentError(
          "batcher needs max_batch_size >= 1, threads >= 1, queue_capacity >= 1, max_delay >= 0 "
          "and a run function");
    }
    std::unique_ptr<Batcher> batcher(new Batcher(options, std::move(run)));
    for (int i = 0; i < options.threads; ++i) {
      batcher->threads_.emplace_back([raw = batcher.get()] { raw->Loop(); });
    }
    return batcher;
  }

  ~Batcher() { Shutdown(); }

  // Queues a job; false (job dropped) when the queue is full or the batcher is shut down.
  bool TrySubmit(Job job) {
    absl::MutexLock lock(&mu_);
    if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
    queue_.push_back(Entry{std::move(job), absl::Now()});
    return true;
  }

  size_t QueueDepth() const {
    absl::MutexLock lock(&mu_);
    return queue_.size();
  }

  // Stops accepting, runs every queued job (in batches), joins the threads. Idempotent; call it
  // from one thread at a time.
  void Shutdown() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    threads_.clear();
  }

 private:
  struct Entry {
    Job job;
    absl::Time enqueued;
  };

  Batcher(Options options, RunBatch run) : options_(options), run_(std::move(run)) {}

  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); }
  bool BatchFull() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || queue_.size() >= static_cast<size_t>(options_.max_batch_size);
  }

  void Loop() {
    for (;;) {
      std::vector<Job> batch;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Batcher::HasWork));
        if (queue_.empty()) return;  // stopping and drained
        // Wait for more jobs until the batch is full or the oldest job's delay is used up.
        const absl::Time close_at = queue_.front().enqueued + options_.max_delay;
        if (options_.max_delay > absl::ZeroDuration()) {
          mu_.AwaitWithDeadline(absl::Condition(this, &Batcher::BatchFull), close_at);
          if (queue_.empty()) continue;  // another thread took the jobs this one waited on
        }
        const size_t n = std::min(queue_.size(), static_cast<size_t>(options_.max_batch_size));
        batch.reserve(n);
        for (size_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue_.front().job));
          queue_.pop_front();
        }
      }
      run_(std::move(batch));
    }
  }

  const Options options_;
  const RunBatch run_;
  mutable absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_BATCHER_H_
