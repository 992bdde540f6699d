#include "server/core/model_manager.h"

#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/stopwatch.h"
#include "server/engine/model_package.h"

namespace cropshield::core {
namespace {

// Changes when a version's files are rewritten: their sizes and modification times.
std::string FilesFingerprint(const engine::ModelPackage& package) {
  std::string fingerprint = package.directory;
  for (const std::string& path :
       {package.directory + "/" + std::string(engine::kMetadataFileName), package.weights_path}) {
    struct stat info {};
    if (stat(path.c_str(), &info) == 0) {
      absl::StrAppend(&fingerprint, "|", info.st_size, "@", info.st_mtim.tv_sec, ".",
                      info.st_mtim.tv_nsec);
    }
  }
  return fingerprint;
}

// Names, sizes and modification times of the files under `root` (a repository is three levels
// deep): changes when a version is added, removed or rewritten, without reading any file.
std::string TreeFingerprint(const std::string& root) {
  std::string fingerprint;
  std::error_code error;
  std::filesystem::recursive_directory_iterator it(root, error), end;
  for (; !error && it != end; it.increment(error)) {
    if (it.depth() > 3) {
      it.disable_recursion_pending();
      continue;
    }
    struct stat info {};
    if (stat(it->path().c_str(), &info) != 0) continue;
    absl::StrAppend(&fingerprint, it->path().string(), "|", info.st_size, "@", info.st_mtim.tv_sec,
                    ".", info.st_mtim.tv_nsec, "\n");
  }
  return fingerprint;
}

cropshield::v1::ModelRef RefOf(const engine::Model& model) {
  cropshield::v1::ModelRef ref;
  ref.set_name(model.name());
  ref.set_version(model.version());
  return ref;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelManager>> ModelManager::Create(ModelManagerOptions options,
                                                                   ModelRegistry* registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("model manager needs a registry");
  if (options.model_path.empty()) return absl::InvalidArgumentError("no model path (--model)");
  if (options.poll_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("model poll interval must be >= 0");
  }
  std::unique_ptr<ModelManager> manager(new ModelManager(std::move(options), registry));
  manager->thread_ = std::thread([raw = manager.get()] { raw->Loop(); });
  return manager;
}

ModelManager::ModelManager(ModelManagerOptions options, ModelRegistry* registry)
    : options_(std::move(options)), registry_(registry) {}

ModelManager::~ModelManager() { Shutdown(); }

void ModelManager::Shutdown() {
  std::deque<Request> abandoned;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    abandoned.swap(queue_);
  }
  for (Request& request : abandoned) {
    request.done(absl::UnavailableError("server is shutting down; model not reloaded"));
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<ReloadOutcome> ModelManager::LoadNow(int64_t version) {
  return Load(version, "startup");
}

void ModelManager::ReloadAsync(int64_t version, Done done) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(Request{version, std::move(done)});
      return;
    }
  }
  done(absl::UnavailableError("server is shutting down; model not reloaded"));
}

void ModelManager::StartWatching() {
  if (options_.poll_interval == absl::ZeroDuration()) return;
  absl::MutexLock lock(&mu_);
  watching_ = true;
}

void ModelManager::Loop() {
  absl::Time next_poll = absl::Now() + options_.poll_interval;
  while (true) {
    std::optional<Request> request;
    bool poll = false;
    {
      absl::MutexLock lock(&mu_);
      const bool was_watching = watching_;
      // StartWatching() flips watching_, which wakes this wait too.
      auto ready = [this, was_watching]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !queue_.empty() || watching_ != was_watching;
      };
      if (watching_) {
        mu_.AwaitWithDeadline(absl::Condition(&ready), next_poll);
      } else {
        mu_.Await(absl::Condition(&ready));
        if (watching_ && !was_watching) next_poll = absl::Now() + options_.poll_interval;
      }
      if (stopping_) return;
      if (!queue_.empty()) {
        request = std::move(queue_.front());
        queue_.pop_front();
      } else if (watching_ && absl::Now() >= next_poll) {
        poll = true;
      }
    }
    if (request.has_value()) {
      request->done(Load(request->version, "rpc"));
    } else if (poll) {
      Poll();
      next_poll = absl::Now() + options_.poll_interval;
    }
  }
}

void ModelManager::Poll() {
  // Resolving verifies the weights' hash (reads every byte): only when a file changed.
  const std::string tree = TreeFingerprint(options_.model_path);
  {
    absl::MutexLock lock(&load_mu_);
    if (tree == last_poll_tree_) return;
    last_poll_tree_ = tree;
  }
  absl::StatusOr<engine::ModelPackage> package =
      engine::ResolveModelPackage(options_.model_path, options_.model_name, 0);
  std::string fingerprint;
  {
    absl::MutexLock lock(&load_mu_);
    if (!package.ok()) {
      // E.g. a version being copied in; logged and recorded once until the problem changes.
      const std::string error = package.status().ToString();
      if (error == last_poll_error_) return;
      last_poll_error_ = error;
      CS_LOG_WARNING("model repository watch: ", error, " (the serving version stays)");
      Record("watch", 0, package.status());
      return;
    }
    last_poll_error_.clear();
    absl::StatusOr<std::shared_ptr<const engine::Model>> current =
        registry_->Get(cropshield::v1::ModelSpec());
    if (current.ok() && (*current)->version() == package->metadata.version()) return;
    fingerprint = FilesFingerprint(*package);
    if (fingerprint == failed_fingerprint_) return;  // unchanged since it failed
  }
  absl::StatusOr<ReloadOutcome> outcome = Load(package->metadata.version(), "watch");
  absl::MutexLock lock(&load_mu_);
  failed_fingerprint_ = outcome.ok() ? "" : fingerprint;
}

absl::StatusOr<ReloadOutcome> ModelManager::Load(int64_t version, const std::string& trigger) {
  absl::MutexLock load_lock(&load_mu_);
  loads_started_.fetch_add(1, std::memory_order_relaxed);
  loads_in_progress_.fetch_add(1, std::memory_order_relaxed);
  // Declared before `current`, so it runs after the replaced version is released.
  absl::Cleanup load_finished = [this] {
    loads_in_progress_.fetch_sub(1, std::memory_order_relaxed);
  };
  Stopwatch watch;
  ReloadOutcome outcome;
  absl::StatusOr<std::shared_ptr<const engine::Model>> current =
      registry_->Get(cropshield::v1::ModelSpec());
  if (current.ok()) outcome.previous = RefOf(**current);

  absl::StatusOr<engine::ModelPackage> package =
      engine::ResolveModelPackage(options_.model_path, options_.model_name, version);
  if (!package.ok()) {
    Record(trigger, version, package.status());
    return package.status();
  }
  const int64_t resolved = package->metadata.version();
  if (current.ok() && (*current)->version() == resolved &&
      (*current)->name() == package->metadata.name()) {
    outcome.current = outcome.previous;
    return outcome;  // already serving: nothing to load
  }
  CS_LOG_INFO("loading model ", package->metadata.name(), " version ", resolved, " from ",
              package->directory, " (", trigger, ")");
  engine::ModelOptions load_options = options_.load_options;
  load_options.package = *std::move(package);
  absl::StatusOr<std::unique_ptr<engine::Model>> model = engine::Model::Create(load_options);
  if (!model.ok()) {
    Record(trigger, resolved, model.status());
    return model.status();
  }
  std::shared_ptr<const engine::Model> loaded = *std::move(model);
  registry_->SetDefault(loaded);
  outcome.current = RefOf(*loaded);
  outcome.reloaded = true;
  outcome.load_seconds = static_cast<double>(watch.ElapsedMicros()) * 1e-6;
  const engine::LoadReport& report = loaded->load_report();
  CS_LOG_INFO("model ", loaded->name(), " version ", loaded->version(), " serving (", trigger,
              "): ",
              report.optimized
                  ? absl::StrCat("frozen+optimized, max prob diff ", report.optimized_max_abs_diff)
                  : absl::StrCat("original module, ", report.optimize_note),
              report.cuda_graphs > 0 ? absl::StrCat("; ", report.cuda_graphs, " CUDA graphs")
              : report.cuda_graphs_note.empty() ? std::string()
                                                : absl::StrCat("; ", report.cuda_graphs_note),
              "; load ", report.load_seconds, " s, warm-up ", report.warmup_seconds, " s",
              current.ok() ? absl::StrCat("; replaced version ", (*current)->version()) : "");
  if (current.ok() && options_.on_retire) options_.on_retire(**current);
  Record(trigger, loaded->version(), absl::OkStatus());
  return outcome;
}

void ModelManager::Record(const std::string& trigger, int64_t version, const absl::Status& status) {
  if (!status.ok()) {
    CS_LOG_ERROR("model load (", trigger, ") of version ", version == 0 ? "latest" : "",
                 version == 0 ? "" : absl::StrCat(version), " failed: ", status.ToString(),
                 "; the serving version (if any) stays");
  }
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  absl::MutexLock lock(&mu_);
  last_load_.set_version(version);
  last_load_.set_ok(status.ok());
  last_load_.set_error(status.ok() ? "" : status.ToString());
  last_load_.set_finished_unix_seconds(now);
  last_load_.set_trigger(trigger);
  ++counters_.loads[{trigger, status.ok() ? "ok" : "error"}];
  counters_.last_ok = status.ok();
  counters_.last_finished_unix_seconds = now;
}

cropshield::v1::ModelLoadStatus ModelManager::LastLoad() const {
  absl::MutexLock lock(&mu_);
  return last_load_;
}

ModelLoadCounters ModelManager::Counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace cropshield::core
