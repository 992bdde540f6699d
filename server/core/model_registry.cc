#include "server/core/model_registry.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cropshield::core {

void ModelRegistry::SetDefault(std::shared_ptr<const engine::Model> model) {
  absl::MutexLock lock(&mu_);
  default_ = std::move(model);
}

absl::StatusOr<std::shared_ptr<const engine::Model>> ModelRegistry::Get(
    const cropshield::v1::ModelSpec& spec) const {
  std::shared_ptr<const engine::Model> model;
  {
    absl::MutexLock lock(&mu_);
    model = default_;
  }
  if (model == nullptr) return absl::UnavailableError("no model is loaded yet; retry shortly");
  if (!spec.name().empty() && spec.name() != model->name()) {
    return absl::NotFoundError(
        absl::StrCat("model '", spec.name(), "' is not served (serving '", model->name(), "')"));
  }
  if (spec.version() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model version must be >= 0, got ", spec.version()));
  }
  if (spec.version() != 0 && spec.version() != model->version()) {
    return absl::NotFoundError(absl::StrCat("model '", model->name(), "' version ", spec.version(),
                                            " is not served (serving version ", model->version(),
                                            ")"));
  }
  return model;
}

std::vector<std::shared_ptr<const engine::Model>> ModelRegistry::All() const {
  absl::MutexLock lock(&mu_);
  if (default_ == nullptr) return {};
  return {default_};
}

}  // namespace cropshield::core
