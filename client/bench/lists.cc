#include "client/bench/lists.h"

#include <cmath>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cropshield::bench {

absl::StatusOr<std::vector<int>> ParseConcurrencyList(absl::string_view text) {
  std::vector<int> levels;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int level = 0;
    if (!absl::SimpleAtoi(item, &level) || level < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--concurrency takes integers >= 1 separated by commas (1,8,64); got '", item, "'"));
    }
    levels.push_back(level);
  }
  return levels;
}

absl::StatusOr<std::vector<double>> ParseRateList(absl::string_view text) {
  std::vector<double> rates;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    double rate = 0;
    if (!absl::SimpleAtod(item, &rate) || !std::isfinite(rate) || rate <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--rate takes requests per second > 0 separated by commas (20,50); got '", item, "'"));
    }
    rates.push_back(rate);
  }
  return rates;
}

}  // namespace cropshield::bench
