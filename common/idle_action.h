// Runs an action on its own thread once a workload has gone quiet: a whole `period` with no new
// work started and none in progress, after some work (or after start-up). The server uses it to
// hand freed heap memory back to the OS between bursts of calls, never in the middle of one.
//
// Thread-safety: the probe and the action run on the IdleAction's thread only; runs() may be
// called from any thread. Destruction stops the thread (an action already running finishes).
#ifndef CROPSHIELD_COMMON_IDLE_ACTION_H_
#define CROPSHIELD_COMMON_IDLE_ACTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace cropshield {

class IdleAction {
 public:
  struct Activity {
    int64_t started = 0;      // work started so far (monotonic)
    int64_t in_progress = 0;  // work started and not yet finished
  };
  using Probe = std::function<Activity()>;
  using Action = std::function<void()>;

  static absl::StatusOr<std::unique_ptr<IdleAction>> Create(absl::Duration period, Probe probe,
                                                            Action action);
  ~IdleAction();

  // How many times the action has run.
  int64_t runs() const { return runs_.load(std::memory_order_relaxed); }

 private:
  IdleAction(absl::Duration period, Probe probe, Action action);
  void Loop();

  const absl::Duration period_;
  const Probe probe_;
  const Action action_;
  absl::Notification stop_;
  std::atomic<int64_t> runs_{0};
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_IDLE_ACTION_H_
