#include "common/latency_window.h"

#include <algorithm>
#include <cmath>

namespace cropshield {

LatencyWindow::LatencyWindow(size_t capacity, absl::Duration max_age)
    : capacity_(std::max<size_t>(1, capacity)), max_age_(max_age) {}

void LatencyWindow::Record(int64_t micros, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (ring_.size() < capacity_) {
    ring_.push_back({micros, now});
  } else {
    ring_[next_] = {micros, now};
  }
  next_ = (next_ + 1) % capacity_;
}

LatencyWindow::Summary LatencyWindow::Summarize(absl::Time now) const {
  std::vector<int64_t> values;
  {
    absl::MutexLock lock(&mu_);
    values.reserve(ring_.size());
    for (const Sample& s : ring_) {
      if (now - s.at <= max_age_) values.push_back(s.micros);
    }
  }
  Summary summary;
  summary.count = static_cast<int64_t>(values.size());
  if (values.empty()) return summary;
  auto percentile = [&values](double q) {
    const size_t rank = static_cast<size_t>(std::ceil(q * values.size()));
    const size_t index = std::min(values.size() - 1, rank == 0 ? 0 : rank - 1);
    std::nth_element(values.begin(), values.begin() + index, values.end());
    return static_cast<double>(values[index]);
  };
  summary.p50_us = percentile(0.50);
  summary.p90_us = percentile(0.90);
  summary.p99_us = percentile(0.99);
  return summary;
}

}  // namespace cropshield
