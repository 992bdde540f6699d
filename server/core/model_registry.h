// The served models, handed out as shared_ptr<const Model> so that a swap (hot reload) never frees
// a model that a request is still using.
//
// Thread-safety: all methods may be called concurrently.
#ifndef CROPSHIELD_SERVER_CORE_MODEL_REGISTRY_H_
#define CROPSHIELD_SERVER_CORE_MODEL_REGISTRY_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/engine/model.h"

namespace cropshield::core {

class ModelRegistry {
 public:
  // Installs `model` as the default model (replacing any other version of it).
  void SetDefault(std::shared_ptr<const engine::Model> model);

  // The model asked for by `spec` (empty name: default; version 0: the loaded one).
  // UNAVAILABLE while no model is loaded; NOT_FOUND for unknown names or versions.
  absl::StatusOr<std::shared_ptr<const engine::Model>> Get(
      const cropshield::v1::ModelSpec& spec) const;

  std::vector<std::shared_ptr<const engine::Model>> All() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<const engine::Model> default_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_MODEL_REGISTRY_H_
