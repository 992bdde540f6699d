#include "server/cache/sharded_lru_cache.h"

#include <xxhash.h>

#include <array>
#include <cstring>
#include <random>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace cropshield::cache {

bool CacheKey::operator==(const CacheKey& other) const {
  return model_version == other.model_version && image_hash_high == other.image_hash_high &&
         image_hash_low == other.image_hash_low && model_name == other.model_name &&
         variant == other.variant;
}

std::pair<uint64_t, uint64_t> HashBytes128(absl::string_view bytes) {
  // XXH3 accepts a null pointer only with length 0; string_view may carry one.
  const XXH128_hash_t hash = XXH3_128bits(bytes.empty() ? "" : bytes.data(), bytes.size());
  return {hash.high64, hash.low64};
}

namespace {

// XXH3's recommended secret size; at least XXH3_SECRET_SIZE_MIN (136).
constexpr size_t kSecretSize = 192;

// Random bytes are what XXH3 asks of a secret.
std::array<unsigned char, kSecretSize> MakeProcessSecret() {
  std::random_device entropy;  // /dev/urandom on Linux
  std::array<unsigned char, kSecretSize> secret;
  for (size_t i = 0; i < secret.size(); i += sizeof(uint32_t)) {
    const uint32_t word = entropy();
    std::memcpy(secret.data() + i, &word, sizeof(word));
  }
  return secret;
}

}  // namespace

std::pair<uint64_t, uint64_t> KeyedHashBytes128(absl::string_view bytes) {
  static const std::array<unsigned char, kSecretSize> secret = MakeProcessSecret();
  const XXH128_hash_t hash = XXH3_128bits_withSecret(bytes.empty() ? "" : bytes.data(),
                                                     bytes.size(), secret.data(), secret.size());
  return {hash.high64, hash.low64};
}

int64_t EntryCharge(const CacheKey& key, size_t value_size) {
  return static_cast<int64_t>(value_size) + static_cast<int64_t>(key.model_name.size()) +
         static_cast<int64_t>(key.variant.size()) + kEntryOverheadBytes;
}

double CacheStats::hit_ratio() const {
  const int64_t lookups = hits + misses;
  return lookups == 0 ? 0.0 : static_cast<double>(hits) / static_cast<double>(lookups);
}

// A stored value. Lives in its shard's index node (stable address) and in the shard's intrusive
// LRU list.
struct ShardedLruCache::Entry {
  Value value;
  int64_t charge = 0;
  absl::Time expires = absl::InfiniteFuture();
  const CacheKey* key = nullptr;  // the index node's key
  Entry* newer = nullptr;
  Entry* older = nullptr;
};

struct ShardedLruCache::Flight {
  std::vector<Waiter> waiters;
  bool stale = false;  // a Clear covered this key after the flight started: do not insert
};

struct ShardedLruCache::Shard {
  explicit Shard(int64_t capacity_bytes) : capacity(capacity_bytes) {}

  // The live entry for `key`, or nullptr. An expired entry is removed (its value appended to
  // `released`, to be destroyed after the lock is dropped) and counted as an expiration.
  Entry* FindLive(const CacheKey& key, absl::Time now, std::vector<Value>* released)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    auto it = index.find(key);
    if (it == index.end()) return nullptr;
    Entry* entry = &it->second;
    if (now >= entry->expires) {
      ++counters.expirations;
      released->push_back(Remove(entry));
      return nullptr;
    }
    return entry;
  }

  void Unlink(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (entry->newer != nullptr) {
      entry->newer->older = entry->older;
    } else {
      newest = entry->older;
    }
    if (entry->older != nullptr) {
      entry->older->newer = entry->newer;
    } else {
      oldest = entry->newer;
    }
    entry->newer = entry->older = nullptr;
  }

  void PushNewest(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    entry->newer = nullptr;
    entry->older = newest;
    if (newest != nullptr) newest->newer = entry;
    newest = entry;
    if (oldest == nullptr) oldest = entry;
  }

  void Touch(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (entry == newest) return;
    Unlink(entry);
    PushNewest(entry);
  }

  // Drops `entry` from the list, the byte count and the index; returns its value.
  Value Remove(Entry* entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    Unlink(entry);
    bytes -= entry->charge;
    Value value = std::move(entry->value);
    index.erase(index.find(*entry->key));
    return value;
  }

  // Insert-or-replace as documented for ShardedLruCache::Insert. Displaced values go to
  // `released`.
  bool Store(const CacheKey& key, Value value, int64_t charge, absl::Time now, absl::Time expires,
             std::vector<Value>* released) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (value == nullptr || charge > capacity) {
      ++counters.rejected;
      auto it = index.find(key);
      if (it != index.end()) released->push_back(Remove(&it->second));
      return false;
    }
    auto [it, inserted] = index.try_emplace(key);
    Entry& entry = it->second;
    if (inserted) {
      entry.key = &it->first;
    } else {
      Unlink(&entry);
      bytes -= entry.charge;
      released->push_back(std::move(entry.value));
    }
    entry.value = std::move(value);
    entry.charge = charge;
    entry.expires = expires;
    PushNewest(&entry);
    bytes += charge;
    ++counters.inserts;
    // `entry` alone fits, so it is never the victim.
    while (bytes > capacity) {
      Entry* victim = oldest;
      if (now >= victim->expires) {
        ++counters.expirations;
      } else {
        ++counters.evictions;
      }
      released->push_back(Remove(victim));
    }
    return true;
  }

  const int64_t capacity;
  mutable absl::Mutex mu;
  absl::node_hash_map<CacheKey, Entry> index ABSL_GUARDED_BY(mu);
  Entry* newest ABSL_GUARDED_BY(mu) = nullptr;  // LRU list head
  Entry* oldest ABSL_GUARDED_BY(mu) = nullptr;  // LRU list tail: next to evict
  int64_t bytes ABSL_GUARDED_BY(mu) = 0;
  absl::flat_hash_map<CacheKey, Flight> flights ABSL_GUARDED_BY(mu);
  // Event counters; entries, bytes, capacity_bytes and in_flight are filled in by Stats.
  ShardStats counters ABSL_GUARDED_BY(mu);
};

namespace {

bool CoveredBy(const CacheKey& key, absl::string_view model_name, int64_t model_version) {
  return key.model_name == model_name && (model_version == 0 || key.model_version == model_version);
}

// Calls each waiter once with `result`, the last one with the moved result.
void CallWaiters(std::vector<Waiter>& waiters, absl::StatusOr<Value> result) {
  for (size_t i = 0; i < waiters.size(); ++i) {
    if (i + 1 == waiters.size()) {
      waiters[i](std::move(result));
    } else {
      waiters[i](result);
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardedLruCache>> ShardedLruCache::Create(Options options) {
  if (options.num_shards < 1 || options.num_shards > 1024) {
    return absl::InvalidArgumentError("cache num_shards must be in [1, 1024]");
  }
  if (options.capacity_bytes < 0) {
    return absl::InvalidArgumentError("cache capacity_bytes must not be negative");
  }
  if (options.ttl < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("cache ttl must not be negative");
  }
  if (!options.clock) options.clock = [] { return absl::Now(); };
  return std::unique_ptr<ShardedLruCache>(new ShardedLruCache(std::move(options)));
}

ShardedLruCache::ShardedLruCache(Options options)
    : options_(std::move(options)),
      shard_capacity_bytes_(options_.capacity_bytes / options_.num_shards) {
  shards_.reserve(options_.num_shards);
  for (int i = 0; i < options_.num_shards; ++i) {
    shards_.push_back(std::make_unique<Shard>(shard_capacity_bytes_));
  }
}

ShardedLruCache::~ShardedLruCache() {
  std::vector<Waiter> orphans;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    absl::MutexLock lock(&shard->mu);
    for (auto& [key, flight] : shard->flights) {
      for (Waiter& waiter : flight.waiters) orphans.push_back(std::move(waiter));
    }
    shard->flights.clear();
  }
  CallWaiters(orphans, absl::CancelledError("cache destroyed before the flight completed"));
}

absl::Time ShardedLruCache::Now() const {
  return options_.ttl > absl::ZeroDuration() ? options_.clock() : absl::InfinitePast();
}

int ShardedLruCache::ShardIndex(const CacheKey& key) const {
  if (options_.num_shards == 1) return 0;
  // The index tables hash the same key with absl::Hash; a splitmix64 finalizer decorrelates the
  // shard choice from the bits the tables use inside a shard.
  uint64_t h = absl::HashOf(key);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<int>(h % static_cast<uint64_t>(options_.num_shards));
}

Value ShardedLruCache::Get(const CacheKey& key) {
  Shard& shard = *shards_[ShardIndex(key)];
  const absl::Time now = Now();
  std::vector<Value> released;  // destroyed after the lock is released
  absl::MutexLock lock(&shard.mu);
  Entry* entry = shard.FindLive(key, now, &released);
  if (entry == nullptr) {
    ++shard.counters.misses;
    return nullptr;
  }
  ++shard.counters.hits;
  shard.Touch(entry);
  return entry->value;
}

bool ShardedLruCache::Insert(const CacheKey& key, Value value) {
  Shard& shard = *shards_[ShardIndex(key)];
  const int64_t charge = EntryCharge(key, value == nullptr ? 0 : value->size());
  const absl::Time now = Now();
  const absl::Time expires =
      options_.ttl > absl::ZeroDuration() ? now + options_.ttl : absl::InfiniteFuture();
  std::vector<Value> released;
  absl::MutexLock lock(&shard.mu);
  return shard.Store(key, std::move(value), charge, now, expires, &released);
}

ShardedLruCache::Lookup ShardedLruCache::GetOrJoin(const CacheKey& key, Waiter waiter) {
  Shard& shard = *shards_[ShardIndex(key)];
  const absl::Time now = Now();
  std::vector<Value> released;
  absl::MutexLock lock(&shard.mu);
  if (Entry* entry = shard.FindLive(key, now, &released); entry != nullptr) {
    ++shard.counters.hits;
    shard.Touch(entry);
    return {entry->value, Role::kHit};
  }
  ++shard.counters.misses;
  auto [it, created] = shard.flights.try_emplace(key);
  if (created) return {nullptr, Role::kLeader};
  ++shard.counters.joins;
  if (waiter) it->second.waiters.push_back(std::move(waiter));
  return {nullptr, Role::kFollower};
}

void ShardedLruCache::Complete(const CacheKey& key, absl::StatusOr<Value> result) {
  Shard& shard = *shards_[ShardIndex(key)];
  const absl::Time now = Now();
  const absl::Time expires =
      options_.ttl > absl::ZeroDuration() ? now + options_.ttl : absl::InfiniteFuture();
  std::vector<Waiter> waiters;
  std::vector<Value> released;
  {
    absl::MutexLock lock(&shard.mu);
    bool stale = false;
    auto it = shard.flights.find(key);
    if (it != shard.flights.end()) {
      waiters = std::move(it->second.waiters);
      stale = it->second.stale;
      shard.flights.erase(it);
    }
    if (result.ok()) {
      if (stale) {
        ++shard.counters.stale_results;
      } else {
        const Value& value = *result;
        shard.Store(key, value, EntryCharge(key, value == nullptr ? 0 : value->size()), now,
                    expires, &released);
      }
    }
  }
  CallWaiters(waiters, std::move(result));
}

ShardedLruCache::Freed ShardedLruCache::Clear() {
  Freed freed;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    absl::node_hash_map<CacheKey, Entry> doomed;  // destroyed after the lock is released
    absl::MutexLock lock(&shard->mu);
    freed.entries += static_cast<int64_t>(shard->index.size());
    freed.bytes += shard->bytes;
    doomed.swap(shard->index);
    shard->newest = shard->oldest = nullptr;
    shard->bytes = 0;
    for (auto& [key, flight] : shard->flights) flight.stale = true;
  }
  return freed;
}

ShardedLruCache::Freed ShardedLruCache::ClearModel(absl::string_view model_name,
                                                   int64_t model_version) {
  Freed freed;
  for (const std::unique_ptr<Shard>& shard : shards_) {
    std::vector<Value> released;
    absl::MutexLock lock(&shard->mu);
    for (Entry* entry = shard->newest; entry != nullptr;) {
      Entry* const older = entry->older;
      if (CoveredBy(*entry->key, model_name, model_version)) {
        ++freed.entries;
        freed.bytes += entry->charge;
        released.push_back(shard->Remove(entry));
      }
      entry = older;
    }
    for (auto& [key, flight] : shard->flights) {
      if (CoveredBy(key, model_name, model_version)) flight.stale = true;
    }
  }
  return freed;
}

CacheStats ShardedLruCache::Stats() const {
  CacheStats stats;
  stats.capacity_bytes = options_.capacity_bytes;
  stats.shards.reserve(shards_.size());
  for (const std::unique_ptr<Shard>& shard : shards_) {
    ShardStats s;
    {
      absl::MutexLock lock(&shard->mu);
      s = shard->counters;
      s.entries = static_cast<int64_t>(shard->index.size());
      s.bytes = shard->bytes;
      s.in_flight = static_cast<int64_t>(shard->flights.size());
    }
    s.capacity_bytes = shard->capacity;
    stats.entries += s.entries;
    stats.bytes += s.bytes;
    stats.hits += s.hits;
    stats.misses += s.misses;
    stats.evictions += s.evictions;
    stats.expirations += s.expirations;
    stats.inserts += s.inserts;
    stats.rejected += s.rejected;
    stats.in_flight += s.in_flight;
    stats.joins += s.joins;
    stats.stale_results += s.stale_results;
    stats.shards.push_back(s);
  }
  return stats;
}

}  // namespace cropshield::cache
