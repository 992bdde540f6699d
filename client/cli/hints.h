// Hints the CLI prints after a failed call.
#ifndef CROPSHIELD_CLIENT_CLI_HINTS_H_
#define CROPSHIELD_CLIENT_CLI_HINTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cropshield::cli {

// For an admin call refused with UNAUTHENTICATED or PERMISSION_DENIED: how to pass the token
// (`token_given`: whether one was sent). Empty for any other status.
std::string AdminTokenHint(const absl::Status& status, bool token_given);

// For an Explain refused because of `label` (INVALID_ARGUMENT or NOT_FOUND whose message names
// the class label): the nearest of `labels`, or the whole list when none is near. Empty otherwise.
std::string LabelHint(const absl::Status& status, absl::string_view label,
                      const std::vector<std::string>& labels);

// True when `status` may be about the class label the request named.
bool IsLabelError(const absl::Status& status);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_HINTS_H_
