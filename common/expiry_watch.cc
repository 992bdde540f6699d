#include "common/expiry_watch.h"

#include <utility>

#include "absl/time/clock.h"

namespace cropshield {

absl::StatusOr<std::unique_ptr<ExpiryWatch>> ExpiryWatch::Create(Options options) {
  if (options.timeout <= absl::ZeroDuration() || options.check_period <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("expiry watch: timeout and check period must be positive");
  }
  std::unique_ptr<ExpiryWatch> watch(new ExpiryWatch(options));
  watch->thread_ = std::thread([raw = watch.get()] { raw->Loop(); });
  return watch;
}

ExpiryWatch::~ExpiryWatch() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ExpiryWatch::Watch(const void* key, std::function<void()> action) {
  absl::MutexLock lock(&mu_);
  entries_[key] = Entry{absl::Now() + options_.timeout, std::move(action)};
}

void ExpiryWatch::Forget(const void* key) {
  absl::MutexLock lock(&mu_);
  entries_.erase(key);
  // The action of `key` may be running on the watch's thread, which may be this very thread (the
  // action triggered the Forget): waiting there would never end.
  if (thread_.get_id() == std::this_thread::get_id()) return;
  struct NotRunning {
    const void* const* running;
    const void* key;
  } wait{&running_, key};
  mu_.Await(absl::Condition(
      +[](NotRunning* w) { return *w->running != w->key; }, &wait));
}

bool ExpiryWatch::TakeExpired(const void** key, std::function<void()>* action) {
  const absl::Time now = absl::Now();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.deadline > now) continue;
    *key = it->first;
    *action = std::move(it->second.action);
    entries_.erase(it);
    return true;
  }
  return false;
}

void ExpiryWatch::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    const void* key = nullptr;
    std::function<void()> action;
    if (!TakeExpired(&key, &action)) {
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.check_period);
      continue;
    }
    running_ = key;
    mu_.Unlock();
    action();
    expired_.fetch_add(1, std::memory_order_relaxed);
    action = nullptr;
    mu_.Lock();
    running_ = nullptr;
  }
}

}  // namespace cropshield
