// A fixed set of worker threads fed by a bounded FIFO queue. Submitting never blocks: a full
// queue is reported to the caller, who turns it into RESOURCE_EXHAUSTED.
//
// Thread-safety: TrySubmit, QueueDepth and Shutdown may be called from any thread. Tasks run on
// the workers; a task must not call Shutdown.
#ifndef CROPSHIELD_COMMON_BOUNDED_EXECUTOR_H_
#define CROPSHIELD_COMMON_BOUNDED_EXECUTOR_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace cropshield {

class BoundedExecutor {
 public:
  struct Options {
    int threads = 1;
    size_t queue_capacity = 256;  // tasks waiting, not counting those running
  };
  using Task = std::function<void()>;

  static absl::StatusOr<std::unique_ptr<BoundedExecutor>> Create(Options options);
  ~BoundedExecutor();  // Shutdown()

  // Queues `task`; false when the queue is full or the executor is shut down (task not run).
  bool TrySubmit(Task task);

  // Tasks waiting to start.
  size_t QueueDepth() const;

  // Stops accepting, runs every task already queued, joins the workers. Idempotent; call it from
  // one thread at a time (normally the owner's).
  void Shutdown();

 private:
  explicit BoundedExecutor(Options options);
  void WorkerLoop();

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_BOUNDED_EXECUTOR_H_
