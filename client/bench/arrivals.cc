#include "client/bench/arrivals.h"

#include <cmath>

namespace cropshield::bench {

std::chrono::nanoseconds PoissonArrivals::NextGap() {
  const double uniform = static_cast<double>(engine_() >> 11) * 0x1.0p-53;  // [0, 1)
  const double seconds = -std::log1p(-uniform) / rate_per_s_;
  return std::chrono::nanoseconds(std::llround(seconds * 1e9));
}

}  // namespace cropshield::bench
