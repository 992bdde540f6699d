// ShardedLruCache under concurrency: single-flight with many threads and a mixed-operation stress
// test. Meant to be run under ThreadSanitizer as well.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/cache/sharded_lru_cache.h"
#include "tests/unit/cache/cache_test_util.h"

namespace cropshield::cache {
namespace {

using ::cropshield::cache::testing::FakeClock;
using ::cropshield::cache::testing::MakeKey;
using ::cropshield::cache::testing::ValueFor;

using Role = ShardedLruCache::Role;

std::unique_ptr<ShardedLruCache> MakeCache(ShardedLruCache::Options options) {
  absl::StatusOr<std::unique_ptr<ShardedLruCache>> cache = ShardedLruCache::Create(options);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return cache.ok() ? std::move(cache).value() : nullptr;
}

// Waits, without sleeping, until `n` followers have joined.
void AwaitJoins(const ShardedLruCache& cache, int64_t n) {
  while (cache.Stats().joins < n) std::this_thread::yield();
}

struct FlightOutcome {
  std::atomic<int> leaders{0};
  std::atomic<int> followers{0};
  std::atomic<int> hits{0};
  std::atomic<int> computations{0};
  std::atomic<int> waiter_calls{0};
  std::vector<absl::StatusOr<Value>> results;  // one slot per thread, written by its waiter
};

// kThreads threads call GetOrJoin on one key at once; the leader completes with `make_result()`
// only after every other thread has joined.
template <typename MakeResult>
void RunFlight(ShardedLruCache& cache, const CacheKey& key, int threads, MakeResult make_result,
               FlightOutcome& outcome) {
  outcome.results.assign(threads, absl::UnknownError("waiter not called"));
  absl::Notification start;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      start.WaitForNotification();
      ShardedLruCache::Lookup lookup = cache.GetOrJoin(key, [&, t](absl::StatusOr<Value> result) {
        outcome.results[t] = std::move(result);
        outcome.waiter_calls.fetch_add(1);
      });
      switch (lookup.role) {
        case Role::kHit:
          outcome.hits.fetch_add(1);
          break;
        case Role::kFollower:
          outcome.followers.fetch_add(1);
          break;
        case Role::kLeader: {
          outcome.leaders.fetch_add(1);
          outcome.computations.fetch_add(1);
          absl::StatusOr<Value> result = make_result();
          outcome.results[t] = result;  // the leader's own answer
          AwaitJoins(cache, threads - 1);
          cache.Complete(key, std::move(result));
          break;
        }
      }
    });
  }
  start.Notify();
  for (std::thread& thread : pool) thread.join();
}

TEST(SingleFlightConcurrencyTest, ThirtyTwoThreadsOneLeaderOneComputation) {
  constexpr int kThreads = 32;
  for (int round = 0; round < 8; ++round) {
    ShardedLruCache::Options options;
    options.capacity_bytes = 1 << 20;
    options.num_shards = 4;
    auto cache = MakeCache(options);
    const CacheKey key = MakeKey("cnn", 1, round);
    const Value value = ValueFor(key, 1000);
    FlightOutcome outcome;
    RunFlight(
        *cache, key, kThreads, [&] { return absl::StatusOr<Value>(value); }, outcome);

    EXPECT_EQ(outcome.leaders.load(), 1);
    EXPECT_EQ(outcome.computations.load(), 1);
    EXPECT_EQ(outcome.followers.load(), kThreads - 1);
    EXPECT_EQ(outcome.hits.load(), 0);
    EXPECT_EQ(outcome.waiter_calls.load(), kThreads - 1);
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_TRUE(outcome.results[t].ok()) << t << ": " << outcome.results[t].status();
      EXPECT_EQ(*outcome.results[t], value) << t;  // the very same object for everyone
    }
    EXPECT_EQ(cache->Get(key), value);
    const CacheStats stats = cache->Stats();
    EXPECT_EQ(stats.joins, kThreads - 1);
    EXPECT_EQ(stats.misses, kThreads);
    EXPECT_EQ(stats.inserts, 1);
    EXPECT_EQ(stats.in_flight, 0);
  }
}

TEST(SingleFlightConcurrencyTest, ThirtyTwoThreadsErrorPropagatesAndIsNotCached) {
  constexpr int kThreads = 32;
  ShardedLruCache::Options options;
  options.capacity_bytes = 1 << 20;
  auto cache = MakeCache(options);
  const CacheKey key = MakeKey("cnn", 1, 1);
  FlightOutcome outcome;
  RunFlight(
      *cache, key, kThreads,
      [] { return absl::StatusOr<Value>(absl::DeadlineExceededError("model too slow")); }, outcome);
  EXPECT_EQ(outcome.leaders.load(), 1);
  EXPECT_EQ(outcome.computations.load(), 1);
  EXPECT_EQ(outcome.waiter_calls.load(), kThreads - 1);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(outcome.results[t].status().code(), absl::StatusCode::kDeadlineExceeded) << t;
  }
  EXPECT_EQ(cache->Get(key), nullptr);
  EXPECT_EQ(cache->Stats().inserts, 0);
  EXPECT_EQ(cache->Stats().in_flight, 0);
}

// Mixed operations from 8 threads over 64 keys, with evictions, TTL expiry, errors and clears.
TEST(StressTest, MixedOperationsKeepInvariantsAndCallEveryWaiterOnce) {
  constexpr int kThreads = 8;
  const absl::Duration kRunFor = absl::Milliseconds(1500);
  ShardedLruCache::Options options;
  options.num_shards = 4;
  options.capacity_bytes = 4 * 10000;  // about a third of the key space fits
  options.ttl = absl::Milliseconds(200);
  auto clock = std::make_shared<FakeClock>();
  const absl::Time start_time = clock->Now();
  options.clock = [clock] { return clock->Now(); };
  auto cache = MakeCache(options);
  const int64_t share = cache->shard_capacity_bytes();

  std::vector<CacheKey> keys;
  for (const char* model : {"cnn", "resnet18"}) {
    for (int version = 1; version <= 2; ++version) {
      for (int image = 0; image < 8; ++image) {
        for (const char* variant : {"explain:argmax", "explain:class=5"}) {
          keys.push_back(MakeKey(model, version, image, variant));
        }
      }
    }
  }
  auto size_of = [](const CacheKey& key) { return 200 + key.image_hash_low % 1800; };
  // Whether `value` is what any writer stores for `key`.
  auto value_is_right = [&](const CacheKey& key, const Value& value) {
    return value != nullptr && *value == *ValueFor(key, size_of(key));
  };

  struct WaiterRecord {
    std::atomic<int> calls{0};
  };
  std::atomic<int64_t> hits{0}, misses{0}, followers{0}, leaders{0}, bad_values{0},
      invariant_violations{0}, waiter_errors{0}, waiter_values{0}, completions{0};
  std::vector<std::vector<std::shared_ptr<WaiterRecord>>> records(kThreads);
  absl::Notification go;
  std::atomic<bool> stop{false};

  auto worker = [&](int thread_index) {
    std::mt19937 rng(1000 + thread_index);
    std::uniform_int_distribution<size_t> pick_key(0, keys.size() - 1);
    std::uniform_int_distribution<int> percent(0, 99);
    std::uniform_int_distribution<int> permille(0, 999);
    std::vector<CacheKey> leading;  // flights this thread must complete
    auto complete_oldest = [&] {
      const CacheKey key = leading.front();
      leading.erase(leading.begin());
      if (percent(rng) < 10) {
        cache->Complete(key, absl::UnavailableError("backend down"));
      } else {
        cache->Complete(key, ValueFor(key, size_of(key)));
      }
      completions.fetch_add(1);
    };
    go.WaitForNotification();
    while (!stop.load(std::memory_order_relaxed)) {
      const CacheKey& key = keys[pick_key(rng)];
      const int p = permille(rng);
      if (p % 20 == 0) clock->Advance(absl::Milliseconds(10));
      if (p < 250) {
        Value value = cache->Get(key);
        (value != nullptr ? hits : misses).fetch_add(1);
        if (value != nullptr && !value_is_right(key, value)) bad_values.fetch_add(1);
      } else if (p < 400) {
        cache->Insert(key, ValueFor(key, size_of(key)));
      } else if (p < 800) {
        auto record = std::make_shared<WaiterRecord>();
        ShardedLruCache::Lookup lookup =
            cache->GetOrJoin(key, [&, record, key](absl::StatusOr<Value> result) {
              if (record->calls.fetch_add(1) != 0) return;  // counted as a violation below
              if (result.ok()) {
                waiter_values.fetch_add(1);
                if (!value_is_right(key, *result)) bad_values.fetch_add(1);
              } else {
                waiter_errors.fetch_add(1);
                if (result.status().code() != absl::StatusCode::kUnavailable) {
                  bad_values.fetch_add(1);
                }
              }
              // Re-entering the cache from a waiter must be safe.
              Value again = cache->Get(key);
              (again != nullptr ? hits : misses).fetch_add(1);
            });
        switch (lookup.role) {
          case Role::kHit:
            hits.fetch_add(1);
            if (!value_is_right(key, lookup.value)) bad_values.fetch_add(1);
            break;
          case Role::kLeader:
            misses.fetch_add(1);
            leaders.fetch_add(1);
            leading.push_back(key);
            if (percent(rng) < 50) complete_oldest();
            break;
          case Role::kFollower:
            misses.fetch_add(1);
            followers.fetch_add(1);
            records[thread_index].push_back(std::move(record));
            break;
        }
      } else if (p < 900) {
        if (!leading.empty()) complete_oldest();
      } else if (p < 910) {
        cache->ClearModel(key.model_name, percent(rng) % 3);  // version 0, 1 or 2
      } else if (p < 912) {
        cache->Clear();
      } else {
        const CacheStats stats = cache->Stats();
        int64_t bytes = 0;
        bool ok = stats.bytes <= stats.capacity_bytes && stats.in_flight >= 0;
        for (const ShardStats& shard : stats.shards) {
          ok = ok && shard.bytes <= share && shard.bytes >= 0 && shard.entries >= 0;
          ok = ok && (shard.entries == 0) == (shard.bytes == 0);
          bytes += shard.bytes;
        }
        if (!ok || bytes != stats.bytes) invariant_violations.fetch_add(1);
      }
    }
    while (!leading.empty()) complete_oldest();
  };

  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) pool.emplace_back(worker, t);
  go.Notify();
  absl::SleepFor(kRunFor);
  stop.store(true);
  for (std::thread& thread : pool) thread.join();

  EXPECT_EQ(bad_values.load(), 0);
  EXPECT_EQ(invariant_violations.load(), 0);
  EXPECT_EQ(completions.load(), leaders.load());
  int64_t registered = 0;
  for (const auto& per_thread : records) {
    for (const auto& record : per_thread) {
      ++registered;
      ASSERT_EQ(record->calls.load(), 1) << "a waiter was not called exactly once";
    }
  }
  EXPECT_EQ(registered, followers.load());
  EXPECT_EQ(waiter_values.load() + waiter_errors.load(), registered);

  const CacheStats stats = cache->Stats();
  std::printf(
      "stress: %lld lookups (%lld hits), %lld flights, %lld followers, %lld waiter errors, %lld "
      "inserts, %lld evictions, %lld expirations, %lld stale results\n",
      static_cast<long long>(stats.hits + stats.misses), static_cast<long long>(stats.hits),
      static_cast<long long>(leaders.load()), static_cast<long long>(followers.load()),
      static_cast<long long>(waiter_errors.load()), static_cast<long long>(stats.inserts),
      static_cast<long long>(stats.evictions), static_cast<long long>(stats.expirations),
      static_cast<long long>(stats.stale_results));
  EXPECT_EQ(stats.in_flight, 0);
  EXPECT_EQ(stats.hits, hits.load());
  EXPECT_EQ(stats.misses, misses.load());
  EXPECT_EQ(stats.joins, followers.load());
  EXPECT_LE(stats.bytes, options.capacity_bytes);
  // Enough happened to mean something (TSan builds run slower, hence the modest floors).
  EXPECT_GT(leaders.load(), 100);
  EXPECT_GT(followers.load(), 10);
  EXPECT_GT(stats.evictions, 10);
  EXPECT_GT(stats.expirations, 0);
  EXPECT_GT(waiter_errors.load(), 0);

  // Honest accounting: with the clock back at its start nothing is expired, so every stored entry
  // is found, and the charges of what is found add up to the bytes reported.
  clock->Set(start_time);
  int64_t found = 0, found_bytes = 0;
  for (const CacheKey& key : keys) {
    Value value = cache->Get(key);
    if (value == nullptr) continue;
    EXPECT_TRUE(value_is_right(key, value));
    ++found;
    found_bytes += EntryCharge(key, value->size());
  }
  const CacheStats after = cache->Stats();
  EXPECT_EQ(found, after.entries);
  EXPECT_EQ(found_bytes, after.bytes);
  const ShardedLruCache::Freed freed = cache->Clear();
  EXPECT_EQ(freed.entries, after.entries);
  EXPECT_EQ(freed.bytes, after.bytes);
}

}  // namespace
}  // namespace cropshield::cache
