#include "common/bounded_executor.h"

#include <utility>

#include "absl/status/status.h"

namespace cropshield {

absl::StatusOr<std::unique_ptr<BoundedExecutor>> BoundedExecutor::Create(Options options) {
  if (options.threads < 1 || options.threads > 1024) {
    return absl::InvalidArgumentError("executor threads must be in [1, 1024]");
  }
  if (options.queue_capacity < 1) {
    return absl::InvalidArgumentError("executor queue capacity must be at least 1");
  }
  std::unique_ptr<BoundedExecutor> executor(new BoundedExecutor(options));
  for (int i = 0; i < options.threads; ++i) {
    executor->workers_.emplace_back([raw = executor.get()] { raw->WorkerLoop(); });
  }
  return executor;
}

BoundedExecutor::BoundedExecutor(Options options) : options_(options) {}

BoundedExecutor::~BoundedExecutor() { Shutdown(); }

bool BoundedExecutor::TrySubmit(Task task) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || queue_.size() >= options_.queue_capacity) return false;
  queue_.push_back(std::move(task));
  return true;
}

size_t BoundedExecutor::QueueDepth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void BoundedExecutor::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
}

void BoundedExecutor::WorkerLoop() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](BoundedExecutor* self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
            return self->stopping_ || !self->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace cropshield
