// The comma-separated lists `cropshield bench` sweeps over: `--concurrency 1,8,64`,
// `--rate 50,100`.
//
// Thread safety: pure functions.
#ifndef CROPSHIELD_CLIENT_BENCH_LISTS_H_
#define CROPSHIELD_CLIENT_BENCH_LISTS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cropshield::bench {

// Integers >= 1, in the order given ("1,8,64"). INVALID_ARGUMENT naming the bad item otherwise
// (empty list or item, "0", "x", "1.5").
absl::StatusOr<std::vector<int>> ParseConcurrencyList(absl::string_view text);

// Finite numbers > 0 (requests per second), in the order given ("20", "12.5,50").
absl::StatusOr<std::vector<double>> ParseRateList(absl::string_view text);

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_LISTS_H_
