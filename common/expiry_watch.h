// Runs a cancel action for work that is still registered `timeout` after it was registered. The
// server registers every finished call whose response gRPC has not yet delivered: a client that
// never reads would otherwise hold the response's memory for as long as its connection lives.
//
// Thread-safety: Watch and Forget may be called from any thread. Actions run on the watch's own
// thread, outside its lock. Forget(key) does not return while that key's action is running on
// another thread, so after Forget the action's captures may be destroyed; an action may itself
// call Forget(key) (directly or through what it triggers) without deadlock.
#ifndef CROPSHIELD_COMMON_EXPIRY_WATCH_H_
#define CROPSHIELD_COMMON_EXPIRY_WATCH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cropshield {

class ExpiryWatch {
 public:
  struct Options {
    absl::Duration timeout = absl::Seconds(30);
    absl::Duration check_period = absl::Milliseconds(250);
  };
  // INVALID_ARGUMENT for a non-positive timeout or period.
  static absl::StatusOr<std::unique_ptr<ExpiryWatch>> Create(Options options);
  ~ExpiryWatch();  // stops the thread; actions of entries still registered do not run

  // Registers `key` (unique among registered keys); `action` runs once if it is still registered
  // after the timeout, and the entry is then dropped.
  void Watch(const void* key, std::function<void()> action);
  void Forget(const void* key);

  // Actions run so far.
  int64_t expired() const { return expired_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    absl::Time deadline;
    std::function<void()> action;
  };
  explicit ExpiryWatch(Options options) : options_(options) {}
  void Loop();
  // Takes the first expired entry's action out of the map, or returns false.
  bool TakeExpired(const void** key, std::function<void()>* action)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<const void*, Entry> entries_ ABSL_GUARDED_BY(mu_);
  const void* running_ ABSL_GUARDED_BY(mu_) = nullptr;  // key whose action runs now
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int64_t> expired_{0};
  std::thread thread_;
};

}  // namespace cropshield

#endif  // CROPSHIELD_COMMON_EXPIRY_WATCH_H_
