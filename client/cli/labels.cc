#include "client/cli/labels.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace cropshield::cli {

int EditDistance(absl::string_view a, absl::string_view b) {
  std::vector<int> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    int diagonal = row[0];
    row[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      const int substitution =
          diagonal + (absl::ascii_tolower(a[i - 1]) == absl::ascii_tolower(b[j - 1]) ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitution});
    }
  }
  return row[b.size()];
}

std::vector<std::string> NearestLabels(absl::string_view query,
                                       const std::vector<std::string>& labels, int max_count) {
  const int limit = std::max<int>(2, static_cast<int>(query.size()) / 3);
  std::vector<std::pair<int, size_t>> ranked;  // (distance, index)
  for (size_t i = 0; i < labels.size(); ++i) {
    const int distance = EditDistance(query, labels[i]);
    if (distance <= limit) ranked.emplace_back(distance, i);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> nearest;
  for (const auto& [distance, index] : ranked) {
    if (static_cast<int>(nearest.size()) == max_count) break;
    nearest.push_back(labels[index]);
  }
  return nearest;
}

}  // namespace cropshield::cli
