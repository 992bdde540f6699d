#include "client/cli/models.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cropshield::cli {

bool IsSet(const v1::ModelSpec& spec) { return !spec.name().empty() || spec.version() != 0; }

absl::StatusOr<const v1::ModelInfo*> FindModel(const v1::StatsResponse& stats,
                                               const v1::ModelSpec& spec) {
  for (const v1::ModelInfo& model : stats.models()) {
    if (!spec.name().empty() && model.name() != spec.name()) continue;
    if (spec.version() != 0 && model.version() != spec.version()) continue;
    return &model;
  }
  std::string served =
      absl::StrJoin(stats.models(), ", ", [](std::string* out, const v1::ModelInfo& model) {
        absl::StrAppend(out, model.name(), " v", model.version());
      });
  return absl::NotFoundError(
      absl::StrCat("model '", spec.name().empty() ? "(default)" : spec.name(), "'",
                   spec.version() != 0 ? absl::StrCat(" version ", spec.version()) : "",
                   " is not served (serving ", served.empty() ? "nothing" : served, ")"));
}

}  // namespace cropshield::cli
