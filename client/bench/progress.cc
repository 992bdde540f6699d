#include "client/bench/progress.h"

#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"

namespace cropshield::bench {

using Clock = std::chrono::steady_clock;

ProgressLine::ProgressLine(bool enabled, std::string label, Clock::time_point measure_from,
                           const CallRecorder* recorder)
    : enabled_(enabled),
      label_(std::move(label)),
      start_(Clock::now()),
      measure_from_(measure_from),
      recorder_(recorder) {
  if (enabled_) thread_ = std::thread([this] { Loop(); });
}

ProgressLine::~ProgressLine() {
  if (!enabled_) return;
  stop_.Notify();
  thread_.join();
  std::cerr << "\n";
}

void ProgressLine::Loop() {
  int64_t last = 0;
  while (!stop_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    const Clock::time_point now = Clock::now();
    const int64_t measured = recorder_->completed();
    std::cerr << absl::StrFormat("\r[%5.1f s] %s %s: %d calls measured, %d/s, %d errors   ",
                                 std::chrono::duration<double>(now - start_).count(), label_,
                                 now < measure_from_ ? "warming up" : "measuring", measured,
                                 measured - last, recorder_->errors())
              << std::flush;
    last = measured;
  }
}

}  // namespace cropshield::bench
