// The once-a-second progress line of a bench step on stderr ("\r[  3.0 s] c8 measuring: ...").
//
// Thread safety: the line's thread only reads the recorder (itself thread-safe); construct and
// destroy a ProgressLine on one thread.
#ifndef CROPSHIELD_CLIENT_BENCH_PROGRESS_H_
#define CROPSHIELD_CLIENT_BENCH_PROGRESS_H_

#include <chrono>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "client/bench/step_result.h"

namespace cropshield::bench {

class ProgressLine {
 public:
  // Prints nothing when `enabled` is false. `recorder` must outlive this object.
  ProgressLine(bool enabled, std::string label, std::chrono::steady_clock::time_point measure_from,
               const CallRecorder* recorder);
  // Stops the thread and ends the line.
  ~ProgressLine();

  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

 private:
  void Loop();

  const bool enabled_;
  const std::string label_;
  const std::chrono::steady_clock::time_point start_;
  const std::chrono::steady_clock::time_point measure_from_;
  const CallRecorder* const recorder_;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_PROGRESS_H_
