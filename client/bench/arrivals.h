// Poisson arrivals for the open loop: exponentially distributed gaps from a seeded generator, so
// that a run's schedule is the same on every machine for the same --seed and --rate.
//
// Thread safety: none; one PoissonArrivals belongs to the one thread that schedules calls.
#ifndef CROPSHIELD_CLIENT_BENCH_ARRIVALS_H_
#define CROPSHIELD_CLIENT_BENCH_ARRIVALS_H_

#include <chrono>
#include <cstdint>
#include <random>

namespace cropshield::bench {

class PoissonArrivals {
 public:
  // `rate_per_s` > 0.
  PoissonArrivals(double rate_per_s, uint64_t seed) : rate_per_s_(rate_per_s), engine_(seed) {}

  // The gap to the next arrival: exponential with mean 1 / rate. Computed from the raw 64-bit
  // engine output (whose sequence the C++ standard fixes) rather than through
  // std::exponential_distribution, whose algorithm differs between standard libraries.
  std::chrono::nanoseconds NextGap();

 private:
  const double rate_per_s_;
  std::mt19937_64 engine_;
};

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_ARRIVALS_H_
