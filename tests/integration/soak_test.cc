// Soak: 64 concurrent clients mix Predict, Explain (cached and not), Stats and bad inputs against
// the real server for CROPSHIELD_SOAK_SECONDS (default 60). Every call must end with the code its
// input deserves, the server's live memory may grow < 5% after the warm-up (the first third), and
// the server must still be SERVING at the end. Live memory is the resident set once the clients
// have paused and the server has handed its free heap back to the OS (--release_memory_idle_ms):
// what is still resident then is in use, so growth there is a leak, not pages touched once.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kSamples;
using ::cropshield::testing::kServer;
using ::cropshield::testing::MakeStub;
using ::cropshield::testing::ReadFileOrDie;
using ::cropshield::testing::ServerProcess;
using ::grpc::health::v1::HealthCheckResponse;

int64_t ResidentKiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

enum class Kind {
  kPredict,
  kExplainCached,
  kExplainFresh,
  kStats,
  kCorrupt,
  kBadTopK,
  kBadClass,
  kEmpty
};

// Draws a call kind: about 45% Predict, 20% Explain (mostly repeats), 10% Stats, 25% bad input.
Kind Draw(std::mt19937& rng) {
  const int r = static_cast<int>(rng() % 100);
  if (r < 45) return Kind::kPredict;
  if (r < 60) return Kind::kExplainCached;
  if (r < 65) return Kind::kExplainFresh;
  if (r < 75) return Kind::kStats;
  if (r < 85) return Kind::kCorrupt;
  if (r < 90) return Kind::kBadTopK;
  if (r < 95) return Kind::kBadClass;
  return Kind::kEmpty;
}

TEST(SoakTest, SixtyFourClientsMixedTrafficNoUnexpectedErrorsNoMemoryGrowth) {
  const char* seconds_env = std::getenv("CROPSHIELD_SOAK_SECONDS");
  const int seconds = seconds_env != nullptr ? std::max(10, std::atoi(seconds_env)) : 60;
  // Long enough for gRPC's thread pool, the allocator's arenas and the caches to reach their
  // working size.
  const auto warmup = std::chrono::seconds(std::max(8, seconds / 3));

  // A cache budget the warm-up fills, so that growth afterwards means a leak, not a filling cache.
  auto server = ServerProcess::Start(
      kServer, {"--model=" + kDemoRepository, "--workers=2", "--explain_cache_bytes=8000000",
                "--metrics_address=127.0.0.1:0", "--release_memory_idle_ms=200"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());

  std::vector<std::string> photos;
  for (const auto& [file, label] : testing::SampleLabels(kSamples)) {
    photos.push_back(ReadFileOrDie(kSamples + "/" + file));
  }
  ASSERT_FALSE(photos.empty());
  std::string corrupt = photos.front().substr(0, photos.front().size() / 3);
  corrupt[corrupt.size() / 2] ^= 0x5a;

  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::map<std::string, int> unexpected;  // "kind/code: message" -> count
  std::map<int, int64_t> calls_by_kind;
  std::vector<std::thread> clients;
  constexpr int kClients = 64;
  int phase = 0;
  auto start_clients = [&] {
    stop = false;
    ++phase;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c, seed = 1234 + c + 1000 * phase] {
        // A few channels shared by the clients, as services with connection pools do.
        auto stub = MakeStub((*server)->address(), grpc::InsecureChannelCredentials(), [c] {
          grpc::ChannelArguments args;
          args.SetInt("cropshield.soak.channel", c % 8);  // distinct args: distinct connections
          return args;
        }());
        std::mt19937 rng(seed);
        uint64_t fresh = 0;
        while (!stop.load()) {
          const Kind kind = Draw(rng);
          const std::string& photo = photos[rng() % photos.size()];
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
          grpc::Status status;
          grpc::StatusCode expected = grpc::StatusCode::OK;
          switch (kind) {
            case Kind::kPredict:
            case Kind::kCorrupt:
            case Kind::kBadTopK:
            case Kind::kEmpty: {
              v1::PredictRequest request;
              request.mutable_image()->set_data(kind == Kind::kCorrupt ? corrupt
                                                : kind == Kind::kEmpty ? std::string()
                                                                       : photo);
              if (kind == Kind::kBadTopK) request.set_top_k(-3);
              if (kind != Kind::kPredict) expected = grpc::StatusCode::INVALID_ARGUMENT;
              v1::PredictResponse response;
              status = stub->Predict(&context, request, &response);
              if (status.ok() && response.predictions_size() != 3) {
                status = grpc::Status(grpc::StatusCode::INTERNAL, "not 3 predictions");
              }
              break;
            }
            case Kind::kExplainCached:
            case Kind::kExplainFresh:
            case Kind::kBadClass: {
              v1::ExplainRequest request;
              request.mutable_image()->set_data(photo);
              if (kind == Kind::kExplainFresh) {
                // A new cache key each time: another target class of the same photo.
                request.set_class_index(static_cast<int>(++fresh % 22));
                request.set_bypass_cache(fresh % 2 == 0);
              }
              if (kind == Kind::kBadClass) {
                request.set_class_index(22 + static_cast<int>(rng() % 1000));
                expected = grpc::StatusCode::INVALID_ARGUMENT;
              }
              v1::ExplainResponse response;
              status = stub->Explain(&context, request, &response);
              break;
            }
            case Kind::kStats: {
              v1::StatsResponse response;
              status = stub->Stats(&context, v1::StatsRequest(), &response);
              break;
            }
          }
          absl::MutexLock lock(&mu);
          ++calls_by_kind[static_cast<int>(kind)];
          if (status.error_code() != expected) {
            ++unexpected[absl::StrCat(static_cast<int>(kind), "/", status.error_code(), ": ",
                                      status.error_message())];
          }
        }
      });
    }
  };
  auto stop_clients = [&] {
    stop = true;
    for (std::thread& client : clients) client.join();
    clients.clear();
  };
  // Stops the clients and returns the resident set once the server, idle, has handed its free
  // memory back. The release count is read while the clients still run (no release can happen
  // then): read after stopping, it could already include this pause's release, and none follows.
  auto stop_clients_and_measure_live_kib = [&]() -> int64_t {
    const double releases = (*server)->MetricValue("cropshield_idle_memory_releases_total");
    stop_clients();
    if (!(*server)->WaitForMetricAbove("cropshield_idle_memory_releases_total", releases,
                                       std::chrono::seconds(30))) {
      std::printf("soak: no idle release in 30 s; calls in flight %.0f, releases %.0f\n",
                  (*server)->MetricValue("cropshield_requests_in_flight"),
                  (*server)->MetricValue("cropshield_idle_memory_releases_total"));
      return -1;
    }
    return ResidentKiB((*server)->pid());
  };

  start_clients();
  std::this_thread::sleep_for(warmup);
  const int64_t rss_after_warmup = stop_clients_and_measure_live_kib();
  start_clients();
  int64_t rss_peak = rss_after_warmup;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds) - warmup;
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    rss_peak = std::max(rss_peak, ResidentKiB((*server)->pid()));
  }
  const int64_t rss_end = stop_clients_and_measure_live_kib();

  int64_t total = 0;
  for (const auto& [kind, count] : calls_by_kind) total += count;
  std::printf(
      "soak: %d s, %d clients, %lld calls (%.0f/s); live RSS after warm-up %lld KiB, at the end "
      "%lld KiB (%+.2f%%); peak under load %lld KiB\n",
      seconds, kClients, static_cast<long long>(total), total / static_cast<double>(seconds),
      static_cast<long long>(rss_after_warmup), static_cast<long long>(rss_end),
      100.0 * (rss_end - rss_after_warmup) / rss_after_warmup, static_cast<long long>(rss_peak));
  EXPECT_THAT(unexpected, ::testing::IsEmpty());
  EXPECT_EQ(calls_by_kind.size(), 8u) << "every kind of call was made";
  EXPECT_GT(total, kClients);
  ASSERT_GT(rss_after_warmup, 0) << "no idle memory release after the warm-up";
  ASSERT_GT(rss_end, 0) << "no idle memory release at the end";
  // In sanitizer builds (CROPSHIELD_SOAK_SANITIZER_BUILD, set by tests/integration/CMakeLists.txt
  // for CROPSHIELD_SANITIZE=address/thread) the resident-memory check is skipped: under TSan the
  // server's RSS is mostly TSan's shadow memory, sync metadata and allocator, which grow as the run
  // touches new addresses and are never given back (+7% and +19% measured after warm-up); under
  // ASan it is ASan's allocator, whose quarantine of freed blocks keeps filling (+5.4% measured
  // once; malloc_trim does not reach it), and LSan checks for leaks at exit. So the growth says
  // nothing about a leak there. Every other check still applies. Nothing in the environment turns
  // the check off in a normal build.
#ifdef CROPSHIELD_SOAK_SANITIZER_BUILD
  std::printf("soak: resident memory check skipped in this %s sanitizer build\n",
              CROPSHIELD_SOAK_SANITIZER_BUILD);
#else
  EXPECT_LT(rss_end, rss_after_warmup * 105 / 100) << "live memory grew >= 5% after warm-up";
#endif
  auto health = (*server)->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);
  auto exit_code = (*server)->StopWith(SIGTERM, std::chrono::seconds(60));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0);
}

}  // namespace
}  // namespace cropshield
