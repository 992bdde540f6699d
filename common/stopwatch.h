// Monotonic elapsed-time measurement in microseconds.
//
// Thread-safety: a Stopwatch is a value; concurrent reads of one instance are safe.
#ifndef CROPSHIELD_COMMON_STOPWATCH_H_
#define CROPSHIELD_COMMON_STOPWATCH_H_

#include <chrono>
#include <cstdint>

namespace cropshield {

class Stopwatch {
 public:
  using Clock = std::chrono::steady_clock;

  Stopwatch() : start_(Clock::now()) {}
  explicit Stopwatch(Clock::time_point start) : start_(start) {}

  Clock::time_point start() const { return start_; }
  int64_t ElapsedMicros() const {
    return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count();
  }
  // Returns the elapsed time and restarts the watch: convenient for consecutive stages.
  int64_t LapMicros() {
    Clock::time_point now = Clock::now();
    int64_t lap = std::chrono::duration_cast<std::chrono::microseconds>(now - start_).count();
    start_ = now;
    return lap;
  }

 private:
  Clock::time_point start_;
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_STOPWATCH_H_
