// Helpers shared by the cache tests.
#ifndef CROPSHIELD_TESTS_UNIT_CACHE_CACHE_TEST_UTIL_H_
#define CROPSHIELD_TESTS_UNIT_CACHE_CACHE_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/cache/sharded_lru_cache.h"

namespace cropshield::cache::testing {

// A key whose image hash is derived from `image`.
inline CacheKey MakeKey(const std::string& model, int64_t version, int image,
                        const std::string& variant = "explain:class=3") {
  auto [high, low] = HashBytes128(absl::StrCat("image-", image));
  return CacheKey{model, version, high, low, variant};
}

inline Value MakeValue(const std::string& bytes) {
  return std::make_shared<const std::string>(bytes);
}

// A value of exactly `size` bytes whose content identifies `key`.
inline Value ValueFor(const CacheKey& key, size_t size) {
  std::string bytes = absl::StrCat(key.model_name, "/", key.model_version, "/", key.image_hash_high,
                                   "/", key.variant, "|");
  bytes.resize(size, '#');
  if (size > 0) bytes.back() = static_cast<char>('a' + key.image_hash_low % 26);
  return std::make_shared<const std::string>(std::move(bytes));
}

// A settable clock, safe to read from any thread.
class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

}  // namespace cropshield::cache::testing

#endif  // CROPSHIELD_TESTS_UNIT_CACHE_CACHE_TEST_UTIL_H_
