// Loads model versions into a ModelRegistry: the first one at start-up, later ones on request
// (the ReloadModel RPC) or when a poll of the model repository finds a different highest version.
// A new version is loaded, checked and warmed up on the manager's own thread while the old one
// keeps serving, then swapped in; requests in flight keep their shared_ptr to the old version. A
// failed load leaves the serving version in place and is reported by LastLoad(), Counters() and the
// log.
//
// Thread-safety: all public methods may be called concurrently. Loads run one at a time on the
// manager's thread, in the order they were asked for.
#ifndef CROPSHIELD_SERVER_CORE_MODEL_MANAGER_H_
#define CROPSHIELD_SERVER_CORE_MODEL_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/model_registry.h"
#include "server/engine/model.h"

namespace cropshield::core {

struct ModelManagerOptions {
  // Where versions come from: a repository, a model directory or a version directory (the last
  // pins one version: reloads find nothing newer).
  std::string model_path;
  std::string model_name;  // picks the model in a repository with several
  // Device, precision, warm-up... for every load; `package` is filled in per load.
  engine::ModelOptions load_options;
  // How often to look for a different highest version; zero disables the watch.
  absl::Duration poll_interval = absl::ZeroDuration();
  // Called after a swap with the version that stopped serving (e.g. to drop its cache entries).
  std::function<void(const engine::Model& retired)> on_retire;
};

struct ReloadOutcome {
  cropshield::v1::ModelRef previous;  // empty name at start-up
  cropshield::v1::ModelRef current;
  bool reloaded = false;  // false when the asked-for version was already serving
  double load_seconds = 0;
};

struct ModelLoadCounters {
  // Loads by trigger ("startup", "rpc", "watch") and result ("ok", "error").
  std::map<std::pair<std::string, std::string>, int64_t> loads;
  bool last_ok = true;
  double last_finished_unix_seconds = 0;
};

class ModelManager {
 public:
  using Done = std::function<void(absl::StatusOr<ReloadOutcome>)>;

  // `registry` must outlive the manager. The watch (if any) starts with StartWatching().
  static absl::StatusOr<std::unique_ptr<ModelManager>> Create(ModelManagerOptions options,
                                                              ModelRegistry* registry);
  ~ModelManager();  // Shutdown()

  // Loads `version` (0: the highest) on the calling thread and installs it. For start-up.
  absl::StatusOr<ReloadOutcome> LoadNow(int64_t version);

  // Queues a load of `version` (0: the highest in the repository); `done` runs on the manager's
  // thread when the new version serves, was already serving, or failed to load. After Shutdown,
  // `done` runs at once with UNAVAILABLE.
  void ReloadAsync(int64_t version, Done done);

  // Starts polling the repository every poll_interval (no-op when it is zero).
  void StartWatching();

  cropshield::v1::ModelLoadStatus LastLoad() const;
  ModelLoadCounters Counters() const;
  // Loads begun so far and loads still running (a load counts until the version it replaced has
  // been released, unless calls in flight still hold it). Any thread; for idle detection.
  int64_t LoadsStarted() const { return loads_started_.load(std::memory_order_relaxed); }
  int64_t LoadsInProgress() const { return loads_in_progress_.load(std::memory_order_relaxed); }

  // Finishes the load in progress, answers queued requests with UNAVAILABLE, stops the thread.
  void Shutdown();

 private:
  struct Request {
    int64_t version;
    Done done;
  };

  ModelManager(ModelManagerOptions options, ModelRegistry* registry);
  void Loop();
  // Resolves, loads and swaps in `version`; records the outcome under `trigger`.
  absl::StatusOr<ReloadOutcome> Load(int64_t version, const std::string& trigger);
  // One poll: loads the repository's highest version when it differs from the serving one. A
  // version that failed is retried only once its files change.
  void Poll();
  void Record(const std::string& trigger, int64_t version, const absl::Status& status);

  const ModelManagerOptions options_;
  ModelRegistry* const registry_;
  absl::Mutex load_mu_;  // one load at a time (LoadNow may race the thread)

  mutable absl::Mutex mu_;
  std::deque<Request> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool watching_ ABSL_GUARDED_BY(mu_) = false;
  cropshield::v1::ModelLoadStatus last_load_ ABSL_GUARDED_BY(mu_);
  ModelLoadCounters counters_ ABSL_GUARDED_BY(mu_);
  std::string failed_fingerprint_ ABSL_GUARDED_BY(load_mu_);  // of the last version that failed
  std::string last_poll_error_ ABSL_GUARDED_BY(load_mu_);     // logged once until it changes
  std::string last_poll_tree_ ABSL_GUARDED_BY(load_mu_);      // files seen by the last poll
  std::atomic<int64_t> loads_started_{0};
  std::atomic<int64_t> loads_in_progress_{0};
  std::thread thread_;
};

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_MODEL_MANAGER_H_
