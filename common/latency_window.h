// Percentiles over a sliding window of recent observations: the last `capacity` samples that are
// younger than `max_age`. Used by the Stats RPC; Prometheus histograms cover long-term views.
//
// Thread-safety: all methods may be called concurrently.
#ifndef CROPSHIELD_COMMON_LATENCY_WINDOW_H_
#define CROPSHIELD_COMMON_LATENCY_WINDOW_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cropshield {

class LatencyWindow {
 public:
  struct Summary {
    int64_t count = 0;
    double p50_us = 0;
    double p90_us = 0;
    double p99_us = 0;
  };

  explicit LatencyWindow(size_t capacity = 4096, absl::Duration max_age = absl::Minutes(5));

  void Record(int64_t micros, absl::Time now);
  // Nearest-rank percentiles of the samples in the window at `now`.
  Summary Summarize(absl::Time now) const;

 private:
  struct Sample {
    int64_t micros;
    absl::Time at;
  };
  const size_t capacity_;
  const absl::Duration max_age_;
  mutable absl::Mutex mu_;
  std::vector<Sample> ring_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_LATENCY_WINDOW_H_
