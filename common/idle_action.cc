#include "common/idle_action.h"

#include <utility>

#include "absl/status/status.h"

namespace cropshield {

absl::StatusOr<std::unique_ptr<IdleAction>> IdleAction::Create(absl::Duration period, Probe probe,
                                                               Action action) {
  if (period <= absl::ZeroDuration() || !probe || !action) {
    return absl::InvalidArgumentError("IdleAction needs a positive period, a probe and an action");
  }
  return std::unique_ptr<IdleAction>(new IdleAction(period, std::move(probe), std::move(action)));
}

IdleAction::IdleAction(absl::Duration period, Probe probe, Action action)
    : period_(period),
      probe_(std::move(probe)),
      action_(std::move(action)),
      thread_([this] { Loop(); }) {}

IdleAction::~IdleAction() {
  stop_.Notify();
  thread_.join();
}

void IdleAction::Loop() {
  Activity last = probe_();
  bool pending = true;  // start-up (model load and warm-up) counts as work
  while (!stop_.WaitForNotificationWithTimeout(period_)) {
    const Activity now = probe_();
    const bool quiet = now.started == last.started && now.in_progress == 0;
    last = now;
    if (!quiet) {
      pending = true;
    } else if (pending) {
      action_();
      runs_.fetch_add(1, std::memory_order_relaxed);
      pending = false;
    }
  }
}

}  // namespace cropshield
