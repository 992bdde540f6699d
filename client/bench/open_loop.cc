// The open loop: this thread sends calls on a Poisson schedule; callbacks only record.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/bench/arrivals.h"
#include "client/bench/load_loops.h"
#include "client/bench/progress.h"

namespace cropshield::bench {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A send later than this after its scheduled time counts as late.
constexpr double kLateMs = 1.0;

// Calls in flight, bounded; shared with the callbacks, which hold it alive until the last returns.
class OpenLoop : public std::enable_shared_from_this<OpenLoop> {
 public:
  OpenLoop(RpcCaller* caller, int max_outstanding)
      : caller_(caller), max_outstanding_(max_outstanding) {}

  // Takes a slot: waits while max_outstanding calls are in flight (setting *waited), until
  // `deadline` at most (false then).
  bool AcquireSlot(Clock::time_point deadline, bool* waited) {
    absl::MutexLock lock(&mu_);
    *waited = !HasFreeSlot();
    const absl::Duration left = absl::FromChrono(deadline - Clock::now());
    if (*waited && !mu_.AwaitWithTimeout(absl::Condition(this, &OpenLoop::HasFreeSlot), left)) {
      return false;
    }
    ++outstanding_;
    return true;
  }

  // Sends in the slot taken; a measured call's latency counts from `scheduled`.
  void Send(const Photo& photo, Clock::time_point scheduled, bool measured) {
    caller_->Call(photo.bytes,
                  [self = shared_from_this(), scheduled, measured](const grpc::Status& status) {
                    if (measured) self->recorder_.Record(status, Ms(Clock::now() - scheduled));
                    absl::MutexLock lock(&self->mu_);
                    --self->outstanding_;
                  });
  }

  void WaitIdle() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &OpenLoop::Idle));
  }

  CallRecorder& recorder() { return recorder_; }

 private:
  bool HasFreeSlot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return outstanding_ < max_outstanding_;
  }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return outstanding_ == 0; }

  RpcCaller* const caller_;
  const int max_outstanding_;
  CallRecorder recorder_;
  absl::Mutex mu_;
  int outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

// Sends every arrival scheduled before `stop_at`; counts the measured ones into `counts`.
void Schedule(OpenLoop& loop, const std::vector<Photo>& photos, const OpenLoopSpec& spec,
              Clock::time_point start, Clock::time_point measure_from, Clock::time_point stop_at,
              OpenLoopCounts* counts) {
  PoissonArrivals arrivals(spec.rate, spec.seed);
  Clock::time_point scheduled = start;
  for (uint64_t index = 0;; ++index) {
    scheduled += arrivals.NextGap();
    if (scheduled >= stop_at) break;
    std::this_thread::sleep_until(scheduled);
    const bool measured = scheduled >= measure_from;
    if (measured) ++counts->scheduled;
    // Past stop_at a full loop stays full: the arrivals left are dropped without waiting.
    bool waited = false;
    if (!loop.AcquireSlot(stop_at, &waited)) {
      if (measured) ++counts->dropped;
      continue;
    }
    const double lag_ms = Ms(Clock::now() - scheduled);
    if (measured) {
      ++counts->sent;
      if (waited) ++counts->delayed;
      if (lag_ms >= kLateMs) ++counts->late;
      counts->max_send_lag_ms = std::max(counts->max_send_lag_ms, lag_ms);
    }
    loop.Send(photos[index % photos.size()], scheduled, measured);
  }
}

}  // namespace

StepResult RunOpenLoop(RpcCaller& caller, const std::vector<Photo>& photos,
                       const OpenLoopSpec& spec, const StepWindow& window) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + Seconds(window.warmup_s);
  const Clock::time_point stop_at = measure_from + Seconds(window.duration_s);
  auto loop = std::make_shared<OpenLoop>(&caller, spec.max_outstanding);
  StepResult result;
  result.mode = "open";
  result.open.target_rate = spec.rate;
  result.open.max_outstanding = spec.max_outstanding;
  Clock::time_point end;
  {
    ProgressLine progress(window.progress, absl::StrFormat("%g/s", spec.rate), measure_from,
                          &loop->recorder());
    Schedule(*loop, photos, spec, start, measure_from, stop_at, &result.open);
    loop->WaitIdle();
    end = Clock::now();
  }
  result.open.sent_rate = window.duration_s > 0 ? result.open.sent / window.duration_s : 0;
  result.seconds = Ms(end - measure_from) / 1000;
  loop->recorder().FillResult(&result);
  return result;
}

}  // namespace cropshield::bench
