// The closed loop: each of `concurrency` slots issues its next call from the previous call's
// callback, until the window ends.
#include <atomic>
#include <chrono>
#include <memory>

#include "absl/synchronization/mutex.h"
#include "client/bench/load_loops.h"
#include "client/bench/progress.h"

namespace cropshield::bench {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// Shared with the calls' callbacks, which hold it alive until the last one returns.
class ClosedLoop : public std::enable_shared_from_this<ClosedLoop> {
 public:
  ClosedLoop(RpcCaller* caller, const std::vector<Photo>* photos, Clock::time_point measure_from,
             Clock::time_point stop_at, int64_t max_requests)
      : caller_(caller),
        photos_(photos),
        measure_from_(measure_from),
        stop_at_(stop_at),
        max_requests_(max_requests) {}

  void Start(int concurrency) {
    {
      absl::MutexLock lock(&mu_);
      active_slots_ = concurrency;
    }
    for (int i = 0; i < concurrency; ++i) Issue();
  }

  void WaitDone() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &ClosedLoop::Done));
  }

  CallRecorder& recorder() { return recorder_; }

 private:
  bool Done() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_slots_ == 0; }

  // Sends the slot's next call, or retires the slot when the window is over.
  void Issue() {
    const Clock::time_point sent = Clock::now();
    const bool measured = sent >= measure_from_;
    // With --requests, each measured call takes a ticket; the slot that gets none retires.
    const bool out_of_tickets =
        measured && max_requests_ > 0 && measured_tickets_.fetch_add(1) >= max_requests_;
    if (sent >= stop_at_ || out_of_tickets) {
      absl::MutexLock lock(&mu_);
      --active_slots_;
      return;
    }
    const Photo& photo = (*photos_)[next_photo_.fetch_add(1) % photos_->size()];
    caller_->Call(photo.bytes, [self = shared_from_this(), sent, measured](const grpc::Status& s) {
      if (measured) {
        self->recorder_.Record(
            s, std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
      }
      self->Issue();
    });
  }

  RpcCaller* const caller_;
  const std::vector<Photo>* const photos_;
  const Clock::time_point measure_from_;
  const Clock::time_point stop_at_;
  const int64_t max_requests_;
  std::atomic<uint64_t> next_photo_{0};
  std::atomic<int64_t> measured_tickets_{0};
  CallRecorder recorder_;
  absl::Mutex mu_;
  int active_slots_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

StepResult RunClosedLoop(RpcCaller& caller, const std::vector<Photo>& photos, int concurrency,
                         const StepWindow& window) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point measure_from = start + Seconds(window.warmup_s);
  const Clock::time_point stop_at =
      window.requests > 0 ? Clock::time_point::max() : measure_from + Seconds(window.duration_s);
  auto loop =
      std::make_shared<ClosedLoop>(&caller, &photos, measure_from, stop_at, window.requests);
  Clock::time_point end;
  {
    ProgressLine progress(window.progress, "c" + std::to_string(concurrency), measure_from,
                          &loop->recorder());
    loop->Start(concurrency);
    loop->WaitDone();
    end = Clock::now();
  }
  StepResult result;
  result.mode = "closed";
  result.concurrency = concurrency;
  result.seconds = std::chrono::duration<double>(end - measure_from).count();
  loop->recorder().FillResult(&result);
  return result;
}

}  // namespace cropshield::bench
