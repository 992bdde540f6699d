#include "client/cli/hints.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/cli/labels.h"

namespace cropshield::cli {

std::string AdminTokenHint(const absl::Status& status, bool token_given) {
  if (status.code() != absl::StatusCode::kUnauthenticated &&
      status.code() != absl::StatusCode::kPermissionDenied) {
    return "";
  }
  if (token_given) {
    return "hint: the server refused the admin token sent (--token, else CROPSHIELD_ADMIN_TOKEN): "
           "it must equal the server's (its --admin_token_file, else its CROPSHIELD_ADMIN_TOKEN)";
  }
  return "hint: admin commands need the server's admin token: pass --token=TOKEN or set "
         "CROPSHIELD_ADMIN_TOKEN (e.g. CROPSHIELD_ADMIN_TOKEN=$(cat token) cropshield "
         "clear-cache); "
         "over plaintext to a host other than this one add --tls, or --allow_plaintext_token";
}

bool IsLabelError(const absl::Status& status) {
  return (status.code() == absl::StatusCode::kInvalidArgument ||
          status.code() == absl::StatusCode::kNotFound) &&
         absl::StrContains(status.message(), "label");
}

std::string LabelHint(const absl::Status& status, absl::string_view label,
                      const std::vector<std::string>& labels) {
  if (label.empty() || labels.empty() || !IsLabelError(status)) return "";
  const std::vector<std::string> nearest = NearestLabels(label, labels);
  if (!nearest.empty()) {
    return absl::StrCat("hint: did you mean ", absl::StrJoin(nearest, " or "), "?");
  }
  return absl::StrCat("hint: the model's labels are ", absl::StrJoin(labels, ", "));
}

}  // namespace cropshield::cli
