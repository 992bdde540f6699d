// Single-threaded behaviour of ShardedLruCache: keys and hashing, LRU order, byte budget, TTL,
// counters, Clear/ClearModel and single-flight bookkeeping.
#include "server/cache/sharded_lru_cache.h"

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/cache/cache_test_util.h"

namespace cropshield::cache {
namespace {

using ::cropshield::cache::testing::FakeClock;
using ::cropshield::cache::testing::MakeKey;
using ::cropshield::cache::testing::MakeValue;
using ::cropshield::cache::testing::ValueFor;

using Role = ShardedLruCache::Role;

std::unique_ptr<ShardedLruCache> MakeCache(ShardedLruCache::Options options) {
  absl::StatusOr<std::unique_ptr<ShardedLruCache>> cache = ShardedLruCache::Create(options);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(cache).value() : nullptr;
}

std::unique_ptr<ShardedLruCache> OneShard(int64_t capacity) {
  ShardedLruCache::Options options;
  options.capacity_bytes = capacity;
  options.num_shards = 1;
  return MakeCache(options);
}

// A waiter that records every call.
struct Recorder {
  std::vector<absl::StatusOr<Value>> results;
  Waiter waiter() {
    return [this](absl::StatusOr<Value> result) { results.push_back(std::move(result)); };
  }
};

using Hash128 = std::pair<uint64_t, uint64_t>;

TEST(HashBytes128Test, MatchesXxh3ReferenceVectors) {
  // xxhash.xxh3_128_hexdigest: canonical form is high then low.
  EXPECT_EQ(HashBytes128(""), Hash128(0x99aa06d3014798d8, 0x6001c324468d497f));
  EXPECT_EQ(HashBytes128("abc"), Hash128(0x06b05ab6733a6185, 0x78af5f94892f3950));
  EXPECT_EQ(HashBytes128(absl::string_view()), HashBytes128(""));
  EXPECT_NE(HashBytes128("abc"), HashBytes128("abd"));
}

TEST(CacheKeyTest, EveryFieldMatters) {
  const CacheKey base = MakeKey("cnn", 1, 7);
  EXPECT_EQ(base, MakeKey("cnn", 1, 7));
  CacheKey k = base;
  k.model_name = "cnn2";
  EXPECT_NE(k, base);
  k = base;
  k.model_version = 2;
  EXPECT_NE(k, base);
  k = base;
  k.image_hash_high ^= 1;
  EXPECT_NE(k, base);
  k = base;
  k.image_hash_low ^= 1;
  EXPECT_NE(k, base);
  k = base;
  k.variant += "x";
  EXPECT_NE(k, base);
}

TEST(CacheKeyTest, VariantIsAnyBytesAndFieldBoundariesCount) {
  auto cache = OneShard(1 << 20);
  CacheKey a = MakeKey("ab", 1, 1, std::string("c\0d", 3));
  CacheKey b = MakeKey("ab", 1, 1, std::string("c\0e", 3));
  CacheKey c = MakeKey("a", 1, 1, std::string("bc\0d", 4));  // same concatenation as `a`
  ASSERT_TRUE(cache->Insert(a, MakeValue("A")));
  ASSERT_TRUE(cache->Insert(b, MakeValue("B")));
  ASSERT_TRUE(cache->Insert(c, MakeValue("C")));
  EXPECT_EQ(*cache->Get(a), "A");
  EXPECT_EQ(*cache->Get(b), "B");
  EXPECT_EQ(*cache->Get(c), "C");
  EXPECT_EQ(cache->Stats().entries, 3);
}

TEST(CreateTest, RejectsOptionsOutOfRange) {
  ShardedLruCache::Options options;
  options.num_shards = 0;
  EXPECT_EQ(ShardedLruCache::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.num_shards = 1025;
  EXPECT_EQ(ShardedLruCache::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.num_shards = 1024;
  EXPECT_TRUE(ShardedLruCache::Create(options).ok());
  options.capacity_bytes = -1;
  EXPECT_EQ(ShardedLruCache::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.capacity_bytes = 0;
  EXPECT_TRUE(ShardedLruCache::Create(options).ok());
  options.ttl = -absl::Seconds(1);
  EXPECT_EQ(ShardedLruCache::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CreateTest, DefaultsAndShardShares) {
  auto cache = MakeCache({});
  EXPECT_EQ(cache->capacity_bytes(), 256 << 20);
  EXPECT_EQ(cache->num_shards(), 16);
  EXPECT_EQ(cache->shard_capacity_bytes(), (256 << 20) / 16);
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.capacity_bytes, 256 << 20);
  ASSERT_EQ(stats.shards.size(), 16u);
  for (const ShardStats& shard : stats.shards) EXPECT_EQ(shard.capacity_bytes, (256 << 20) / 16);
  EXPECT_EQ(stats.hit_ratio(), 0.0);
}

TEST(ShardedLruCacheTest, MissInsertHitAndAccounting) {
  auto cache = OneShard(1 << 20);
  const CacheKey key = MakeKey("cnn", 3, 1);
  EXPECT_EQ(cache->Get(key), nullptr);
  Value value = MakeValue("serialized-explanation");
  EXPECT_TRUE(cache->Insert(key, value));
  Value got = cache->Get(key);
  EXPECT_EQ(got, value);  // the same immutable object, not a copy
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.entries, 1);
  EXPECT_EQ(stats.bytes, EntryCharge(key, value->size()));
  EXPECT_EQ(stats.bytes, 22 + 3 + 15 + kEntryOverheadBytes);
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.inserts, 1);
  EXPECT_DOUBLE_EQ(stats.hit_ratio(), 0.5);
}

TEST(ShardedLruCacheTest, ReplaceUpdatesValueAndBytes) {
  auto cache = OneShard(1 << 20);
  const CacheKey key = MakeKey("cnn", 1, 1);
  ASSERT_TRUE(cache->Insert(key, MakeValue(std::string(100, 'a'))));
  ASSERT_TRUE(cache->Insert(key, MakeValue(std::string(40, 'b'))));
  EXPECT_EQ(*cache->Get(key), std::string(40, 'b'));
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.entries, 1);
  EXPECT_EQ(stats.bytes, EntryCharge(key, 40));
  EXPECT_EQ(stats.inserts, 2);
  EXPECT_EQ(stats.evictions, 0);
}

TEST(ShardedLruCacheTest, TouchedEntryIsProtectedFromEviction) {
  const CacheKey a = MakeKey("cnn", 1, 1), b = MakeKey("cnn", 1, 2), c = MakeKey("cnn", 1, 3),
                 d = MakeKey("cnn", 1, 4), e = MakeKey("cnn", 1, 5);
  auto cache = OneShard(3 * EntryCharge(a, 100));  // room for exactly three
  for (const CacheKey& key : {a, b, c}) ASSERT_TRUE(cache->Insert(key, ValueFor(key, 100)));
  ASSERT_NE(cache->Get(a), nullptr);                // order now (newest first): a c b
  ASSERT_TRUE(cache->Insert(d, ValueFor(d, 100)));  // evicts b
  EXPECT_EQ(cache->Get(b), nullptr);
  EXPECT_NE(cache->Get(c), nullptr);  // c d a
  // Replacing refreshes too: a becomes newest, so e evicts d.
  ASSERT_TRUE(cache->Insert(a, ValueFor(a, 100)));  // a c d
  ASSERT_TRUE(cache->Insert(e, ValueFor(e, 100)));  // evicts d
  EXPECT_EQ(cache->Get(d), nullptr);
  EXPECT_NE(cache->Get(a), nullptr);
  EXPECT_NE(cache->Get(c), nullptr);
  EXPECT_NE(cache->Get(e), nullptr);
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.evictions, 2);
  EXPECT_EQ(stats.entries, 3);
  EXPECT_EQ(stats.bytes, 3 * EntryCharge(a, 100));
}

TEST(ShardedLruCacheTest, BigInsertEvictsSeveralOldest) {
  const CacheKey a = MakeKey("cnn", 1, 1), b = MakeKey("cnn", 1, 2), c = MakeKey("cnn", 1, 3),
                 big = MakeKey("cnn", 1, 4);
  const int64_t one = EntryCharge(a, 100);
  auto cache = OneShard(3 * one);
  for (const CacheKey& key : {a, b, c}) ASSERT_TRUE(cache->Insert(key, ValueFor(key, 100)));
  // Charged exactly two small entries: a and b go, c stays.
  ASSERT_TRUE(
      cache->Insert(big, ValueFor(big, static_cast<size_t>(2 * one - EntryCharge(big, 0)))));
  EXPECT_EQ(cache->Get(a), nullptr);
  EXPECT_EQ(cache->Get(b), nullptr);
  EXPECT_NE(cache->Get(c), nullptr);
  EXPECT_NE(cache->Get(big), nullptr);
  EXPECT_EQ(cache->Stats().evictions, 2);
  EXPECT_LE(cache->Stats().bytes, 3 * one);
}

TEST(ShardedLruCacheTest, OversizeEntryIsRejected) {
  const CacheKey key = MakeKey("cnn", 1, 1);
  const int64_t overhead = EntryCharge(key, 0);
  auto cache = OneShard(1000);
  // Exactly the shard's budget fits.
  EXPECT_TRUE(cache->Insert(key, ValueFor(key, 1000 - overhead)));
  EXPECT_EQ(cache->Stats().bytes, 1000);
  // One byte more does not, and the superseded entry for the key goes too.
  EXPECT_FALSE(cache->Insert(key, ValueFor(key, 1001 - overhead)));
  EXPECT_EQ(cache->Get(key), nullptr);
  // A null value is not stored either.
  EXPECT_FALSE(cache->Insert(MakeKey("cnn", 1, 2), nullptr));
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.bytes, 0);
  EXPECT_EQ(stats.rejected, 2);
  EXPECT_EQ(stats.inserts, 1);
  EXPECT_EQ(stats.evictions, 0);
}

TEST(ShardedLruCacheTest, OversizeIsPerShardNotTotal) {
  ShardedLruCache::Options options;
  options.capacity_bytes = 4000;
  options.num_shards = 4;
  auto cache = MakeCache(options);
  const CacheKey key = MakeKey("cnn", 1, 1);
  EXPECT_FALSE(cache->Insert(key, ValueFor(key, 1500)));  // fits 4000, not a 1000 share
  EXPECT_TRUE(cache->Insert(key, ValueFor(key, 1000 - EntryCharge(key, 0))));
}

TEST(ShardedLruCacheTest, ZeroCapacityStoresNothing) {
  auto cache = OneShard(0);
  const CacheKey key = MakeKey("cnn", 1, 1);
  EXPECT_FALSE(cache->Insert(key, MakeValue("x")));
  EXPECT_EQ(cache->Get(key), nullptr);
  EXPECT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  Recorder follower;
  EXPECT_EQ(cache->GetOrJoin(key, follower.waiter()).role, Role::kFollower);
  cache->Complete(key, MakeValue("x"));
  ASSERT_EQ(follower.results.size(), 1u);
  EXPECT_EQ(**follower.results[0], "x");
  EXPECT_EQ(cache->Stats().entries, 0);
}

// Reference model of one shard: the documented algorithm, written plainly.
struct ModelShard {
  std::list<int> lru;  // newest first
  std::map<int, std::pair<int64_t, Value>> entries;
  int64_t bytes = 0;
  ShardStats counters;

  void Remove(int id) {
    lru.remove(id);
    bytes -= entries[id].first;
    entries.erase(id);
  }
  Value Get(int id) {
    auto it = entries.find(id);
    if (it == entries.end()) {
      ++counters.misses;
      return nullptr;
    }
    ++counters.hits;
    lru.remove(id);
    lru.push_front(id);
    return it->second.second;
  }
  bool Insert(int id, int64_t charge, Value value, int64_t capacity) {
    if (entries.count(id)) Remove(id);
    if (charge > capacity) {
      ++counters.rejected;
      return false;
    }
    entries[id] = {charge, std::move(value)};
    lru.push_front(id);
    bytes += charge;
    ++counters.inserts;
    while (bytes > capacity) {
      ++counters.evictions;
      Remove(lru.back());
    }
    return true;
  }
};

TEST(ShardedLruCacheTest, ByteBudgetAndCountersMatchReferenceUnderRandomLoad) {
  constexpr int kShards = 8;
  constexpr int64_t kCapacity = 64 * 1024;
  constexpr int kKeys = 400;
  ShardedLruCache::Options options;
  options.capacity_bytes = kCapacity;
  options.num_shards = kShards;
  auto cache = MakeCache(options);
  const int64_t share = cache->shard_capacity_bytes();
  ASSERT_EQ(share, kCapacity / kShards);

  std::vector<CacheKey> keys;
  for (int i = 0; i < kKeys; ++i) {
    keys.push_back(MakeKey(i % 3 == 0 ? "cnn" : "resnet18", 1 + i % 2, i, std::string(i % 7, 'v')));
  }
  std::vector<ModelShard> model(kShards);
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> pick_key(0, kKeys - 1);
  std::uniform_int_distribution<int> pick_size(0, 3000);
  std::uniform_int_distribution<int> percent(0, 99);
  int64_t total_evictions = 0;
  for (int step = 0; step < 4000; ++step) {
    const int id = pick_key(rng);
    const CacheKey& key = keys[id];
    ModelShard& shard_model = model[cache->ShardIndex(key)];
    const int p = percent(rng);
    if (p < 65) {
      const size_t size = p == 0 ? 20000 : static_cast<size_t>(pick_size(rng));
      Value value = ValueFor(key, size);
      const bool stored = cache->Insert(key, value);
      ASSERT_EQ(stored, shard_model.Insert(id, EntryCharge(key, size), value, share))
          << "step " << step;
    } else {
      ASSERT_EQ(cache->Get(key), shard_model.Get(id)) << "step " << step;
    }
    const CacheStats stats = cache->Stats();
    ASSERT_LE(stats.bytes, kCapacity) << "step " << step;
    int64_t bytes = 0, entries = 0;
    for (int s = 0; s < kShards; ++s) {
      const ShardStats& got = stats.shards[s];
      const ModelShard& want = model[s];
      ASSERT_LE(got.bytes, share) << "step " << step << " shard " << s;
      ASSERT_EQ(got.bytes, want.bytes) << "step " << step << " shard " << s;
      ASSERT_EQ(got.entries, static_cast<int64_t>(want.entries.size())) << "shard " << s;
      ASSERT_EQ(got.hits, want.counters.hits) << "shard " << s;
      ASSERT_EQ(got.misses, want.counters.misses) << "shard " << s;
      ASSERT_EQ(got.evictions, want.counters.evictions) << "shard " << s;
      ASSERT_EQ(got.inserts, want.counters.inserts) << "shard " << s;
      ASSERT_EQ(got.rejected, want.counters.rejected) << "shard " << s;
      bytes += got.bytes;
      entries += got.entries;
    }
    ASSERT_EQ(bytes, stats.bytes);
    ASSERT_EQ(entries, stats.entries);
    total_evictions = stats.evictions;
  }
  EXPECT_GT(total_evictions, 500);  // the budget was actually exercised
  // Every key the model holds is there with its value, and no other.
  for (int id = 0; id < kKeys; ++id) {
    ASSERT_EQ(cache->Get(keys[id]), model[cache->ShardIndex(keys[id])].Get(id)) << "key " << id;
  }
  const CacheStats before = cache->Stats();
  const ShardedLruCache::Freed freed = cache->Clear();
  EXPECT_EQ(freed.entries, before.entries);
  EXPECT_EQ(freed.bytes, before.bytes);
}

TEST(ShardedLruCacheTest, PerShardCountersExactAndConsistentWithTotals) {
  ShardedLruCache::Options options;
  options.num_shards = 4;
  const CacheKey probe = MakeKey("cnn", 1, 0);
  options.capacity_bytes = 4 * (EntryCharge(probe, 100) + EntryCharge(probe, 100) / 2);
  auto cache = MakeCache(options);  // each shard holds one 100-byte entry
  // Two keys of one shard, for an eviction.
  std::vector<CacheKey> by_shard[4];
  for (int i = 0; by_shard[0].size() < 2 || by_shard[1].size() < 1 || by_shard[2].size() < 1; ++i) {
    CacheKey key = MakeKey("cnn", 1, i);
    by_shard[cache->ShardIndex(key)].push_back(key);
  }
  const CacheKey a1 = by_shard[0][0], a2 = by_shard[0][1], b = by_shard[1][0], c = by_shard[2][0];

  ASSERT_TRUE(cache->Insert(a1, ValueFor(a1, 100)));
  ASSERT_TRUE(cache->Insert(a2, ValueFor(a2, 100)));  // evicts a1
  EXPECT_EQ(cache->Get(a1), nullptr);
  EXPECT_NE(cache->Get(a2), nullptr);
  ASSERT_TRUE(cache->Insert(b, ValueFor(b, 100)));
  EXPECT_NE(cache->Get(b), nullptr);
  EXPECT_EQ(cache->GetOrJoin(b, nullptr).role, Role::kHit);
  EXPECT_EQ(cache->Get(c), nullptr);
  EXPECT_EQ(cache->GetOrJoin(c, nullptr).role, Role::kLeader);
  EXPECT_EQ(cache->GetOrJoin(c, nullptr).role, Role::kFollower);
  EXPECT_FALSE(cache->Insert(c, ValueFor(c, 1000)));

  const CacheStats stats = cache->Stats();
  const ShardStats& s0 = stats.shards[0];
  const ShardStats& s1 = stats.shards[1];
  const ShardStats& s2 = stats.shards[2];
  const ShardStats& s3 = stats.shards[3];
  EXPECT_EQ(s0.entries, 1);
  EXPECT_EQ(s0.bytes, EntryCharge(a2, 100));
  EXPECT_EQ(s0.hits, 1);
  EXPECT_EQ(s0.misses, 1);
  EXPECT_EQ(s0.evictions, 1);
  EXPECT_EQ(s0.inserts, 2);
  EXPECT_EQ(s1.entries, 1);
  EXPECT_EQ(s1.hits, 2);
  EXPECT_EQ(s1.misses, 0);
  EXPECT_EQ(s1.evictions, 0);
  EXPECT_EQ(s1.inserts, 1);
  EXPECT_EQ(s2.entries, 0);
  EXPECT_EQ(s2.hits, 0);
  EXPECT_EQ(s2.misses, 3);
  EXPECT_EQ(s2.inserts, 0);
  EXPECT_EQ(s2.rejected, 1);
  EXPECT_EQ(s2.in_flight, 1);
  EXPECT_EQ(s2.joins, 1);
  EXPECT_EQ(s3.hits + s3.misses + s3.inserts + s3.evictions + s3.entries, 0);

  EXPECT_EQ(stats.hits, 3);
  EXPECT_EQ(stats.misses, 4);
  EXPECT_EQ(stats.evictions, 1);
  EXPECT_EQ(stats.inserts, 3);
  EXPECT_EQ(stats.entries, 2);
  EXPECT_EQ(stats.bytes, s0.bytes + s1.bytes);
  EXPECT_EQ(stats.in_flight, 1);
  EXPECT_EQ(stats.joins, 1);
  EXPECT_EQ(stats.rejected, 1);
  EXPECT_DOUBLE_EQ(stats.hit_ratio(), 3.0 / 7.0);
  cache->Complete(c, absl::UnavailableError("done"));
}

TEST(ShardedLruCacheTest, ShardIndexIsStableAndSpreads) {
  ShardedLruCache::Options options;
  options.num_shards = 16;
  auto cache = MakeCache(options);
  std::vector<int> counts(16, 0);
  for (int i = 0; i < 1600; ++i) {
    const CacheKey key = MakeKey("cnn", 1, i);
    const int shard = cache->ShardIndex(key);
    ASSERT_GE(shard, 0);
    ASSERT_LT(shard, 16);
    EXPECT_EQ(shard, cache->ShardIndex(MakeKey("cnn", 1, i)));
    ++counts[shard];
  }
  for (int count : counts) EXPECT_GT(count, 50);  // 100 expected per shard
}

class TtlTest : public ::testing::Test {
 protected:
  std::unique_ptr<ShardedLruCache> MakeTtlCache(int64_t capacity, absl::Duration ttl) {
    ShardedLruCache::Options options;
    options.capacity_bytes = capacity;
    options.num_shards = 1;
    options.ttl = ttl;
    options.clock = [this] {
      ++clock_calls_;
      return clock_.Now();
    };
    return MakeCache(options);
  }
  FakeClock clock_;
  int clock_calls_ = 0;
};

TEST_F(TtlTest, EntryExpiresAtTtl) {
  auto cache = MakeTtlCache(1 << 20, absl::Seconds(10));
  const CacheKey key = MakeKey("cnn", 1, 1);
  ASSERT_TRUE(cache->Insert(key, MakeValue("v")));
  clock_.Advance(absl::Seconds(10) - absl::Nanoseconds(1));
  EXPECT_NE(cache->Get(key), nullptr);  // a hit does not extend the lifetime
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(cache->Get(key), nullptr);
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.expirations, 1);
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.misses, 1);
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.bytes, 0);
  EXPECT_GT(clock_calls_, 0);
}

TEST_F(TtlTest, ReplaceRestartsTheLifetime) {
  auto cache = MakeTtlCache(1 << 20, absl::Seconds(10));
  const CacheKey key = MakeKey("cnn", 1, 1);
  ASSERT_TRUE(cache->Insert(key, MakeValue("v1")));
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(cache->Insert(key, MakeValue("v2")));
  clock_.Advance(absl::Seconds(7));
  ASSERT_NE(cache->Get(key), nullptr);
  EXPECT_EQ(*cache->Get(key), "v2");
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(cache->Get(key), nullptr);
}

TEST_F(TtlTest, ExpiredEntryMakesGetOrJoinALeader) {
  auto cache = MakeTtlCache(1 << 20, absl::Seconds(1));
  const CacheKey key = MakeKey("cnn", 1, 1);
  ASSERT_TRUE(cache->Insert(key, MakeValue("old")));
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  EXPECT_EQ(cache->Stats().expirations, 1);
  cache->Complete(key, MakeValue("new"));
  EXPECT_EQ(*cache->Get(key), "new");
}

TEST_F(TtlTest, ExpiredOldestEntryCountsAsExpirationWhenMakingRoom) {
  const CacheKey a = MakeKey("cnn", 1, 1), b = MakeKey("cnn", 1, 2), c = MakeKey("cnn", 1, 3);
  auto cache = MakeTtlCache(2 * EntryCharge(a, 10), absl::Seconds(10));
  ASSERT_TRUE(cache->Insert(a, ValueFor(a, 10)));
  clock_.Advance(absl::Seconds(11));
  ASSERT_TRUE(cache->Insert(b, ValueFor(b, 10)));
  ASSERT_TRUE(cache->Insert(c, ValueFor(c, 10)));  // a, expired, makes room
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.expirations, 1);
  EXPECT_EQ(stats.evictions, 0);
  EXPECT_EQ(stats.entries, 2);
}

TEST_F(TtlTest, ZeroTtlNeverExpiresAndNeverReadsTheClock) {
  auto cache = MakeTtlCache(1 << 20, absl::ZeroDuration());
  const CacheKey key = MakeKey("cnn", 1, 1);
  ASSERT_TRUE(cache->Insert(key, MakeValue("v")));
  clock_.Advance(absl::Hours(24 * 365));
  EXPECT_NE(cache->Get(key), nullptr);
  EXPECT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kHit);
  EXPECT_EQ(cache->Stats().expirations, 0);
  EXPECT_EQ(clock_calls_, 0);
}

TEST(ClearTest, ClearAndClearModelReturnExactlyWhatTheyFreed) {
  ShardedLruCache::Options options;
  options.capacity_bytes = 1 << 20;
  options.num_shards = 4;
  auto cache = MakeCache(options);
  int64_t a1_bytes = 0, a2_bytes = 0, b_bytes = 0;
  for (int i = 0; i < 3; ++i) {
    const CacheKey key = MakeKey("a", 1, i);
    ASSERT_TRUE(cache->Insert(key, ValueFor(key, 100 + i)));
    a1_bytes += EntryCharge(key, 100 + i);
  }
  for (int i = 0; i < 2; ++i) {
    const CacheKey key = MakeKey("a", 2, i, "other-variant");
    ASSERT_TRUE(cache->Insert(key, ValueFor(key, 300 + i)));
    a2_bytes += EntryCharge(key, 300 + i);
  }
  for (int i = 0; i < 2; ++i) {
    CacheKey key = MakeKey("b", 1, i);
    ASSERT_TRUE(cache->Insert(key, ValueFor(key, 50)));
    b_bytes += EntryCharge(key, 50);
    key = MakeKey("ab", 1, i);  // a longer name with the same prefix is another model
    ASSERT_TRUE(cache->Insert(key, ValueFor(key, 50)));
    b_bytes += EntryCharge(key, 50);
  }
  ASSERT_EQ(cache->Stats().bytes, a1_bytes + a2_bytes + b_bytes);

  ShardedLruCache::Freed freed = cache->ClearModel("a", 1);
  EXPECT_EQ(freed.entries, 3);
  EXPECT_EQ(freed.bytes, a1_bytes);
  EXPECT_EQ(cache->Get(MakeKey("a", 1, 0)), nullptr);
  EXPECT_NE(cache->Get(MakeKey("a", 2, 0, "other-variant")), nullptr);
  freed = cache->ClearModel("a", 1);
  EXPECT_EQ(freed.entries, 0);
  EXPECT_EQ(freed.bytes, 0);
  freed = cache->ClearModel("a", 3);
  EXPECT_EQ(freed.entries, 0);

  freed = cache->ClearModel("a", 0);  // every version
  EXPECT_EQ(freed.entries, 2);
  EXPECT_EQ(freed.bytes, a2_bytes);
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.entries, 4);
  EXPECT_EQ(stats.bytes, b_bytes);
  EXPECT_NE(cache->Get(MakeKey("b", 1, 0)), nullptr);
  EXPECT_NE(cache->Get(MakeKey("ab", 1, 1)), nullptr);

  freed = cache->Clear();
  EXPECT_EQ(freed.entries, 4);
  EXPECT_EQ(freed.bytes, b_bytes);
  stats = cache->Stats();
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.bytes, 0);
  EXPECT_EQ(stats.evictions, 0);  // clearing is not evicting
  freed = cache->Clear();
  EXPECT_EQ(freed.entries, 0);
  EXPECT_EQ(freed.bytes, 0);
  // Still usable.
  const CacheKey key = MakeKey("b", 1, 0);
  ASSERT_TRUE(cache->Insert(key, ValueFor(key, 10)));
  EXPECT_NE(cache->Get(key), nullptr);
}

TEST(SingleFlightTest, LeaderFollowersAndComplete) {
  auto cache = OneShard(1 << 20);
  const CacheKey key = MakeKey("cnn", 1, 1);
  Recorder leader_waiter, f1, f2, f3;
  ShardedLruCache::Lookup lookup = cache->GetOrJoin(key, leader_waiter.waiter());
  EXPECT_EQ(lookup.role, Role::kLeader);
  EXPECT_EQ(lookup.value, nullptr);
  EXPECT_EQ(cache->GetOrJoin(key, f1.waiter()).role, Role::kFollower);
  EXPECT_EQ(cache->GetOrJoin(key, f2.waiter()).role, Role::kFollower);
  EXPECT_EQ(cache->GetOrJoin(key, f3.waiter()).role, Role::kFollower);
  EXPECT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kFollower);  // empty waiter: fine
  EXPECT_TRUE(f1.results.empty());
  EXPECT_EQ(cache->Stats().in_flight, 1);

  Value value = MakeValue("computed");
  cache->Complete(key, value);
  for (Recorder* r : {&f1, &f2, &f3}) {
    ASSERT_EQ(r->results.size(), 1u);
    ASSERT_TRUE(r->results[0].ok());
    EXPECT_EQ(*r->results[0], value);
  }
  EXPECT_TRUE(leader_waiter.results.empty());

  Recorder hit_waiter;
  lookup = cache->GetOrJoin(key, hit_waiter.waiter());
  EXPECT_EQ(lookup.role, Role::kHit);
  EXPECT_EQ(lookup.value, value);
  EXPECT_TRUE(hit_waiter.results.empty());

  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.in_flight, 0);
  EXPECT_EQ(stats.joins, 4);
  EXPECT_EQ(stats.misses, 5);
  EXPECT_EQ(stats.hits, 1);
  EXPECT_EQ(stats.inserts, 1);
  EXPECT_EQ(stats.entries, 1);
  // The flight is over: a second Complete neither reaches the old waiters nor breaks anything.
  cache->Complete(key, MakeValue("again"));
  EXPECT_EQ(f1.results.size(), 1u);
  EXPECT_EQ(*cache->Get(key), "again");
}

TEST(SingleFlightTest, ErrorsReachWaitersAndAreNotInserted) {
  auto cache = OneShard(1 << 20);
  const CacheKey key = MakeKey("cnn", 1, 1);
  Recorder f1, f2;
  ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  ASSERT_EQ(cache->GetOrJoin(key, f1.waiter()).role, Role::kFollower);
  ASSERT_EQ(cache->GetOrJoin(key, f2.waiter()).role, Role::kFollower);
  cache->Complete(key, absl::ResourceExhaustedError("queue full"));
  for (Recorder* r : {&f1, &f2}) {
    ASSERT_EQ(r->results.size(), 1u);
    EXPECT_EQ(r->results[0].status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(r->results[0].status().message(), "queue full");
  }
  EXPECT_EQ(cache->Get(key), nullptr);
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.inserts, 0);
  EXPECT_EQ(stats.in_flight, 0);
  // The next miss leads a new flight.
  EXPECT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  cache->Complete(key, MakeValue("ok"));
  EXPECT_EQ(*cache->Get(key), "ok");
}

TEST(SingleFlightTest, CompleteWithoutFlightJustInserts) {
  auto cache = OneShard(1 << 20);
  const CacheKey key = MakeKey("cnn", 1, 1);
  cache->Complete(key, MakeValue("v"));
  EXPECT_EQ(*cache->Get(key), "v");
  cache->Complete(MakeKey("cnn", 1, 2), absl::InternalError("nobody listens"));
  EXPECT_EQ(cache->Stats().entries, 1);
}

TEST(SingleFlightTest, OversizeResultStillReachesWaiters) {
  auto cache = OneShard(1000);
  const CacheKey key = MakeKey("cnn", 1, 1);
  Recorder follower;
  ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  ASSERT_EQ(cache->GetOrJoin(key, follower.waiter()).role, Role::kFollower);
  cache->Complete(key, ValueFor(key, 5000));
  ASSERT_EQ(follower.results.size(), 1u);
  EXPECT_EQ((*follower.results[0])->size(), 5000u);
  EXPECT_EQ(cache->Get(key), nullptr);
  EXPECT_EQ(cache->Stats().rejected, 1);
}

TEST(SingleFlightTest, WaitersRunWithoutLocksAndMayReenter) {
  auto cache = OneShard(1 << 20);  // one shard: a lock held around waiters would self-deadlock
  const CacheKey key = MakeKey("cnn", 1, 1);
  const CacheKey other = MakeKey("cnn", 1, 2);
  std::thread::id waiter_thread;
  bool nested_called = false;
  Waiter nested = [&](absl::StatusOr<Value> r) { nested_called = r.ok(); };
  Waiter reentrant = [&](absl::StatusOr<Value> result) {
    waiter_thread = std::this_thread::get_id();
    EXPECT_EQ(cache->Get(key), *result);
    EXPECT_EQ(cache->GetOrJoin(other, nullptr).role, Role::kLeader);
    EXPECT_EQ(cache->GetOrJoin(other, nested).role, Role::kFollower);
    cache->Complete(other, MakeValue("nested"));
    cache->Clear();
    (void)cache->Stats();
  };
  ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  ASSERT_EQ(cache->GetOrJoin(key, reentrant).role, Role::kFollower);
  cache->Complete(key, MakeValue("v"));
  EXPECT_EQ(waiter_thread, std::this_thread::get_id());  // on the completing thread
  EXPECT_TRUE(nested_called);
}

TEST(SingleFlightTest, FlightStartedBeforeClearModelDoesNotInsert) {
  auto cache = MakeCache({});
  const CacheKey a1 = MakeKey("a", 1, 1), a2 = MakeKey("a", 2, 1), b1 = MakeKey("b", 1, 1);
  for (const CacheKey& key : {a1, a2, b1}) {
    ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  }
  Recorder before, after;
  ASSERT_EQ(cache->GetOrJoin(a1, before.waiter()).role, Role::kFollower);
  cache->ClearModel("a", 1);
  // A lookup after the Clear still joins the flight (and so gets its result) ...
  ASSERT_EQ(cache->GetOrJoin(a1, after.waiter()).role, Role::kFollower);
  for (const CacheKey& key : {a1, a2, b1}) cache->Complete(key, ValueFor(key, 10));
  ASSERT_EQ(before.results.size(), 1u);
  ASSERT_EQ(after.results.size(), 1u);
  EXPECT_EQ(**before.results[0], *ValueFor(a1, 10));
  // ... but the stale value is not inserted; the other version and model are.
  EXPECT_EQ(cache->Get(a1), nullptr);
  EXPECT_NE(cache->Get(a2), nullptr);
  EXPECT_NE(cache->Get(b1), nullptr);
  EXPECT_EQ(cache->Stats().stale_results, 1);
  // A flight started after the Clear inserts.
  ASSERT_EQ(cache->GetOrJoin(a1, nullptr).role, Role::kLeader);
  cache->Complete(a1, ValueFor(a1, 10));
  EXPECT_NE(cache->Get(a1), nullptr);
}

TEST(SingleFlightTest, ClearAllAndVersionZeroMarkFlightsStale) {
  auto cache = MakeCache({});
  const CacheKey a1 = MakeKey("a", 1, 1), a2 = MakeKey("a", 2, 1), b1 = MakeKey("b", 1, 1);
  for (const CacheKey& key : {a1, a2, b1}) {
    ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  }
  cache->ClearModel("a", 0);
  for (const CacheKey& key : {a1, a2, b1}) cache->Complete(key, ValueFor(key, 10));
  EXPECT_EQ(cache->Get(a1), nullptr);
  EXPECT_EQ(cache->Get(a2), nullptr);
  EXPECT_NE(cache->Get(b1), nullptr);

  for (const CacheKey& key : {a1, a2}) {
    ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
  }
  cache->Clear();
  for (const CacheKey& key : {a1, a2}) cache->Complete(key, ValueFor(key, 10));
  CacheStats stats = cache->Stats();
  EXPECT_EQ(stats.entries, 0);
  EXPECT_EQ(stats.stale_results, 4);
  EXPECT_EQ(stats.in_flight, 0);
}

TEST(SingleFlightTest, DestructorCancelsPendingWaiters) {
  Recorder follower;
  {
    auto cache = OneShard(1 << 20);
    const CacheKey key = MakeKey("cnn", 1, 1);
    ASSERT_EQ(cache->GetOrJoin(key, nullptr).role, Role::kLeader);
    ASSERT_EQ(cache->GetOrJoin(key, follower.waiter()).role, Role::kFollower);
  }
  ASSERT_EQ(follower.results.size(), 1u);
  EXPECT_EQ(follower.results[0].status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace cropshield::cache
