// A sharded LRU cache of immutable byte strings (serialized responses), bounded in bytes, with an
// optional time to live, asynchronous single-flight for concurrent misses, and per-shard counters.
//
// Keys name a model (name + version), the encoded image (its XXH3-128 content hash) and a request
// variant. XXH3 is fast but not collision resistant: two different images that someone crafted to
// share a hash share an entry. Callers that need that guarantee must fold a stronger digest into
// `variant`.
//
// Byte accounting: an entry is charged EntryCharge(key, value->size()) = value bytes + model name
// bytes + variant bytes + kEntryOverheadBytes (see there). Each shard holds at most
// capacity_bytes / num_shards bytes of charges; the cache as a whole at most capacity_bytes.
//
// Single-flight: GetOrJoin makes the first caller that misses on a key its leader; later callers
// that miss on that key while the leader computes become followers whose waiters Complete calls
// with the leader's result. A Clear or ClearModel that covers a key in flight marks that flight
// stale: its result still goes to the flight's waiters (including ones that join after the
// Clear), but it is not inserted, so a value computed before a redeploy's ClearCache never lands
// in the cache after it.
//
// Thread-safety: every method may be called from any number of threads at once. Each shard has its
// own absl::Mutex; no method holds more than one shard lock at a time, and waiters and value
// destructors of cleared entries run with no lock held, so a waiter may call back into the cache.
// Stats, Clear and ClearModel visit the shards one after another: they are not atomic snapshots of
// the whole cache. The cache must outlive every flight: destroy it only after every leader has
// called Complete (the destructor calls any waiter still pending with CANCELLED).
#ifndef CROPSHIELD_SERVER_CACHE_SHARDED_LRU_CACHE_H_
#define CROPSHIELD_SERVER_CACHE_SHARDED_LRU_CACHE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cropshield::cache {

struct CacheKey {
  std::string model_name;
  int64_t model_version = 0;
  uint64_t image_hash_high = 0;  // XXH3-128 of the encoded image bytes
  uint64_t image_hash_low = 0;
  std::string variant;  // everything else that changes the answer (class, method, output options)

  bool operator==(const CacheKey& other) const;
  bool operator!=(const CacheKey& other) const { return !(*this == other); }

  template <typename H>
  friend H AbslHashValue(H h, const CacheKey& key) {
    return H::combine(std::move(h), key.model_name, key.model_version, key.image_hash_high,
                      key.image_hash_low, key.variant);
  }
};

// XXH3-128 of `bytes` as (high 64 bits, low 64 bits); the canonical (big-endian) hex form is
// high then low. Uses libxxhash.
std::pair<uint64_t, uint64_t> HashBytes128(absl::string_view bytes);

// XXH3-128 of `bytes` keyed with a secret drawn at random once per process (XXH3's secret form):
// cache keys of caller-supplied images, so that no caller can craft images whose keys collide
// with another's without the secret, which never leaves the process.
std::pair<uint64_t, uint64_t> KeyedHashBytes128(absl::string_view bytes);

using Value = std::shared_ptr<const std::string>;
using Waiter = std::function<void(absl::StatusOr<Value>)>;

// Fixed bytes charged per entry on top of its value and key strings: what the cache itself spends
// per entry on x86-64 with libstdc++ and glibc, rounded up: the index node holding key and entry
// (152 bytes: two std::string headers, version, hashes, value pointer, expiry, charge, LRU links)
// and its malloc header, the index slot and control byte at the table's load factor, the value's
// shared_ptr control block with its std::string header (48 with make_shared) and the malloc
// headers of both allocations. Measured: 200,000 entries of 100-byte values (made with
// make_shared) and 4 key bytes grew the heap by 348 bytes each, i.e. 244 beyond value and key.
// Spare capacity of the strings and the transient memory of flights and waiters are not charged.
inline constexpr int64_t kEntryOverheadBytes = 256;

// The bytes an entry for `key` with a value of `value_size` bytes is charged against the budget.
int64_t EntryCharge(const CacheKey& key, size_t value_size);

struct ShardStats {
  int64_t entries = 0;      // stored now
  int64_t bytes = 0;        // sum of EntryCharge of the stored entries
  int64_t hits = 0;         // Get / GetOrJoin found a live entry
  int64_t misses = 0;       // Get / GetOrJoin found none (leaders and followers are misses)
  int64_t evictions = 0;    // live entries dropped to make room
  int64_t expirations = 0;  // expired entries dropped (on lookup, or when found at the LRU end)
  int64_t inserts = 0;      // entries stored (Insert, or Complete of a live flight)
  // Additions:
  int64_t capacity_bytes = 0;  // this shard's budget: capacity_bytes / num_shards
  int64_t rejected = 0;        // values not stored: larger than the shard's budget, or null
  int64_t in_flight = 0;       // flights (leaders) computing now
  int64_t joins = 0;           // GetOrJoin calls that became followers
  int64_t stale_results = 0;   // OK flight results not inserted because a Clear covered the flight
};

struct CacheStats {
  // hits / (hits + misses); 0 before any lookup.
  double hit_ratio() const;

  int64_t capacity_bytes = 0;
  int64_t entries = 0;
  int64_t bytes = 0;
  int64_t hits = 0;
  int64_t misses = 0;
  int64_t evictions = 0;
  int64_t expirations = 0;
  // Additions: totals of the ShardStats fields of the same names.
  int64_t inserts = 0;
  int64_t rejected = 0;
  int64_t in_flight = 0;
  int64_t joins = 0;
  int64_t stale_results = 0;
  std::vector<ShardStats> shards;
};

class ShardedLruCache {
 public:
  struct Options {
    int64_t capacity_bytes = 256 << 20;  // total budget, >= 0; each shard gets capacity/num_shards
    int num_shards = 16;                 // 1..1024
    absl::Duration ttl = absl::ZeroDuration();  // >= 0; 0 = entries never expire
    // Injectable for tests; default absl::Now. Called from any thread, only when ttl > 0.
    std::function<absl::Time()> clock;
  };

  // INVALID_ARGUMENT for options out of range. A capacity of 0 stores nothing but still
  // deduplicates flights.
  static absl::StatusOr<std::unique_ptr<ShardedLruCache>> Create(Options options);
  ~ShardedLruCache();
  ShardedLruCache(const ShardedLruCache&) = delete;
  ShardedLruCache& operator=(const ShardedLruCache&) = delete;

  // The value on a hit (refreshes its LRU position; counts a hit), nullptr on a miss (counts a
  // miss). An expired entry is a miss; it is removed and counted as an expiration.
  Value Get(const CacheKey& key);

  // Inserts or replaces the entry for `key`, as the most recently used, and evicts least recently
  // used entries of its shard until the shard fits its budget. A null value, or one whose charge
  // exceeds the shard's budget, is not stored (returns false; counted as rejected) and removes any
  // entry the key had, which the caller has just superseded.
  bool Insert(const CacheKey& key, Value value);

  // Single-flight for asynchronous callers (gRPC callback handlers must not block):
  //  - hit: returns {value, Role::kHit}; `waiter` is neither stored nor called.
  //  - miss, nobody computing this key: returns {nullptr, Role::kLeader}; the caller must compute
  //    and then call Complete(key, result) exactly once. `waiter` is not stored.
  //  - miss, a leader is computing it: `waiter` is stored and will be called exactly once, from
  //    Complete (on the leader's thread, outside any lock), with the leader's result; returns
  //    {nullptr, Role::kFollower}. An empty `waiter` is allowed and simply not stored.
  enum class Role { kHit, kLeader, kFollower };
  struct Lookup {
    Value value;
    Role role;
  };
  Lookup GetOrJoin(const CacheKey& key, Waiter waiter);

  // Ends the flight of `key`: on OK inserts the value (as Insert does) unless a Clear or ClearModel
  // covering the key ran since the flight started; then calls every waiter of the flight with
  // `result` (errors too), with no lock held. For a key with no flight it just inserts an OK value.
  void Complete(const CacheKey& key, absl::StatusOr<Value> result);

  struct Freed {
    int64_t entries = 0;
    int64_t bytes = 0;
  };
  // Removes every entry and marks every flight stale. Counters other than entries/bytes are kept.
  Freed Clear();
  // Removes the entries of `model_name` at `model_version` (0: at every version) and marks their
  // flights stale. Other models and versions are left alone.
  Freed ClearModel(absl::string_view model_name, int64_t model_version);

  CacheStats Stats() const;
  int64_t capacity_bytes() const { return options_.capacity_bytes; }

  // Additions, for tests and diagnostics.
  int num_shards() const { return options_.num_shards; }
  int64_t shard_capacity_bytes() const { return shard_capacity_bytes_; }
  // The shard that holds `key`: a function of the whole key, stable for this process.
  int ShardIndex(const CacheKey& key) const;

 private:
  struct Entry;
  struct Flight;
  struct Shard;

  explicit ShardedLruCache(Options options);
  // The clock's time when entries can expire; otherwise absl::InfinitePast() without a call.
  absl::Time Now() const;

  const Options options_;
  const int64_t shard_capacity_bytes_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace cropshield::cache

#endif  // CROPSHIELD_SERVER_CACHE_SHARDED_LRU_CACHE_H_
