// Label suggestions for a class label the server does not know (`explain --class`).
#ifndef CROPSHIELD_CLIENT_CLI_LABELS_H_
#define CROPSHIELD_CLIENT_CLI_LABELS_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace cropshield::cli {

// Levenshtein distance (insertions, deletions, substitutions of bytes), ignoring ASCII case.
int EditDistance(absl::string_view a, absl::string_view b);

// Up to `max_count` of `labels` nearest to `query` by EditDistance (ties in label order), keeping
// only those close enough to be a plausible typo: distance <= max(2, query.size() / 3).
std::vector<std::string> NearestLabels(absl::string_view query,
                                       const std::vector<std::string>& labels, int max_count = 3);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_LABELS_H_
