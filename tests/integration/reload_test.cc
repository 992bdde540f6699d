// Hot reload of the real cropshield-server: ReloadModel and the repository watch swap versions
// under load without a failed call, drop the old version's cache entries, and a broken version
// keeps the old one serving with the error in Stats, the log and the metrics.
#include <grpcpp/grpcpp.h>
#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

namespace fs = std::filesystem;
using ::cropshield::testing::kSamples;
using ::cropshield::testing::kServer;
using ::cropshield::testing::kSourceDir;
using ::cropshield::testing::MakeStub;
using ::cropshield::testing::ReadFileOrDie;
using ::cropshield::testing::ServerProcess;
using ::testing::HasSubstr;

const std::string kDemoVersion = kSourceDir + "/models/repository/cropshield-demo/1";

// The package format's weights hash: XXH3-128, canonical (big-endian) bytes in lowercase hex.
std::string Xxh3_128Hex(const std::string& bytes) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, XXH3_128bits(bytes.data(), bytes.size()));
  std::string hex;
  for (unsigned char byte : canonical.digest)
    absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  return hex;
}

// A private repository holding the demo model as version 1.
class Repository {
 public:
  explicit Repository(const std::string& name)
      : model_dir_(::testing::TempDir() + "/" + name + "/cropshield-demo") {
    fs::remove_all(fs::path(model_dir_).parent_path());
    fs::create_directories(model_dir_);
    fs::copy(kDemoVersion, model_dir_ + "/1");
  }
  std::string root() const { return fs::path(model_dir_).parent_path().string(); }

  // Version `version`: the demo weights under a new version number, staged next to the repository
  // and renamed in, as a deploy pipeline would.
  void AddVersion(int version) const {
    const std::string staging = root() + ".staging";
    fs::remove_all(staging);
    fs::copy(kDemoVersion, staging);
    const std::string json = ReadFileOrDie(staging + "/model.json");
    std::ofstream(staging + "/model.json", std::ios::trunc) << absl::StrReplaceAll(
        json, {{"\"version\": 1,", absl::StrCat("\"version\": ", version, ",")}});
    fs::rename(staging, absl::StrCat(model_dir_, "/", version));
  }
  // A version whose weights are not TorchScript (its hash in model.json matches them).
  void AddBrokenVersion(int version) const {
    const std::string dir = absl::StrCat(model_dir_, "/", version);
    AddVersion(version);
    std::ofstream(dir + "/model.pt", std::ios::trunc) << "not a torchscript archive";
    const std::string json = ReadFileOrDie(dir + "/model.json");
    std::ofstream(dir + "/model.json", std::ios::trunc) << std::regex_replace(
        json, std::regex("\"weights_xxh3_128\": \"[0-9a-f]+\""),
        "\"weights_xxh3_128\": \"" + Xxh3_128Hex(ReadFileOrDie(dir + "/model.pt")) + "\"");
  }

 private:
  std::string model_dir_;
};

// Predict calls from several threads until Stop(); counts answers per model version and failures.
class Load {
 public:
  Load(const std::string& address, int threads) {
    const std::string jpeg =
        ReadFileOrDie(kSamples + "/" + testing::SampleLabels(kSamples).begin()->first);
    for (int t = 0; t < threads; ++t) {
      threads_.emplace_back([this, address, jpeg] {
        auto stub = MakeStub(address);
        while (!stop_.load()) {
          grpc::ClientContext context;
          context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          v1::PredictRequest request;
          request.mutable_image()->set_data(jpeg);
          v1::PredictResponse response;
          grpc::Status status = stub->Predict(&context, request, &response);
          absl::MutexLock lock(&mu_);
          if (status.ok()) {
            ++by_version_[response.model().version()];
          } else {
            failures_.push_back(absl::StrCat(status.error_code(), ": ", status.error_message()));
          }
        }
      });
    }
  }
  ~Load() { Stop(); }

  void Stop() {
    stop_ = true;
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }
  std::map<int64_t, int> by_version() {
    absl::MutexLock lock(&mu_);
    return by_version_;
  }
  std::vector<std::string> failures() {
    absl::MutexLock lock(&mu_);
    return failures_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::map<int64_t, int> by_version_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
};

grpc::Status Reload(v1::CropShieldService::Stub* stub, int64_t version,
                    v1::ReloadModelResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::ReloadModelRequest request;
  request.set_version(version);
  return stub->ReloadModel(&context, request, response);
}

v1::StatsResponse Stats(v1::CropShieldService::Stub* stub) {
  grpc::ClientContext context;
  v1::StatsResponse stats;
  EXPECT_TRUE(stub->Stats(&context, v1::StatsRequest(), &stats).ok());
  return stats;
}

TEST(ReloadTest, ReloadModelSwapsVersionsUnderLoadWithoutAFailedCall) {
  Repository repository("reload_rpc");
  auto server =
      ServerProcess::Start(kServer, {"--model=" + repository.root(), "--workers=2",
                                     "--metrics_address=127.0.0.1:0", "--admin_trust_loopback"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  auto stub = MakeStub((*server)->address());

  // An explanation of version 1 sits in the cache.
  v1::ExplainRequest explain;
  explain.mutable_image()->set_data(
      ReadFileOrDie(kSamples + "/" + testing::SampleLabels(kSamples).begin()->first));
  v1::ExplainResponse explained;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->Explain(&context, explain, &explained).ok());
  }
  EXPECT_EQ(Stats(stub.get()).explain_cache().entries(), 1);

  Load load((*server)->address(), 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  repository.AddVersion(2);
  v1::ReloadModelResponse reloaded;
  grpc::Status status = Reload(stub.get(), 0, &reloaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(reloaded.reloaded());
  EXPECT_EQ(reloaded.previous().version(), 1);
  EXPECT_EQ(reloaded.current().name(), "cropshield-demo");
  EXPECT_EQ(reloaded.current().version(), 2);
  EXPECT_GT(reloaded.load_seconds(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));

  // Asking again for what serves loads nothing.
  status = Reload(stub.get(), 2, &reloaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(reloaded.reloaded());
  EXPECT_EQ(reloaded.current().version(), 2);

  // A broken version fails to load; version 2 keeps serving; the error is reported.
  repository.AddBrokenVersion(3);
  status = Reload(stub.get(), 3, &reloaded);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.error_message(), HasSubstr("model.pt"));
  v1::StatsResponse stats = Stats(stub.get());
  ASSERT_EQ(stats.models_size(), 1);
  EXPECT_EQ(stats.models(0).version(), 2);
  EXPECT_FALSE(stats.last_model_load().ok());
  EXPECT_EQ(stats.last_model_load().version(), 3);
  EXPECT_EQ(stats.last_model_load().trigger(), "rpc");
  EXPECT_THAT(stats.last_model_load().error(), HasSubstr("model.pt"));
  EXPECT_EQ(stats.explain_cache().entries(), 0) << "version 1's explanation was not dropped";

  // Rollback to version 1 by number.
  status = Reload(stub.get(), 1, &reloaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(reloaded.current().version(), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  load.Stop();

  EXPECT_THAT(load.failures(), ::testing::IsEmpty());
  const std::map<int64_t, int> answered = load.by_version();
  EXPECT_GT(answered.count(1), 0);
  EXPECT_GT(answered.count(2), 0) << "no call was answered by version 2";
  EXPECT_TRUE(Stats(stub.get()).last_model_load().ok());

  const std::string metrics = (*server)->MetricsText();
  EXPECT_THAT(metrics, HasSubstr("cropshield_model_loads_total{result=\"ok\",trigger=\"rpc\"} 2"));
  EXPECT_THAT(metrics,
              HasSubstr("cropshield_model_loads_total{result=\"error\",trigger=\"rpc\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("cropshield_model_last_load_success 1"));
  EXPECT_THAT((*server)->Log(), HasSubstr("failed"));
}

TEST(ReloadTest, RepositoryWatchLoadsANewVersionAndSkipsABrokenOne) {
  Repository repository("reload_watch");
  auto server =
      ServerProcess::Start(kServer, {"--model=" + repository.root(), "--model_poll_interval_s=1",
                                     "--workers=2", "--admin_trust_loopback"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  auto stub = MakeStub((*server)->address());
  Load load((*server)->address(), 3);

  auto wait_for = [&](auto condition) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (condition(Stats(stub.get()))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  };
  repository.AddVersion(2);
  EXPECT_TRUE(wait_for([](const v1::StatsResponse& s) {
    return s.models_size() == 1 && s.models(0).version() == 2;
  }));
  v1::StatsResponse stats = Stats(stub.get());
  EXPECT_EQ(stats.last_model_load().trigger(), "watch");
  EXPECT_TRUE(stats.last_model_load().ok());

  repository.AddBrokenVersion(3);
  EXPECT_TRUE(wait_for([](const v1::StatsResponse& s) {
    return s.last_model_load().version() == 3 && !s.last_model_load().ok();
  }));
  // Several polls later: still version 2, and the broken version was tried once.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  stats = Stats(stub.get());
  EXPECT_EQ(stats.models(0).version(), 2);
  // A rollback by RPC stays: the watch acts only when the repository's files change.
  v1::ReloadModelResponse rolled_back;
  grpc::Status status = Reload(stub.get(), 1, &rolled_back);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(Stats(stub.get()).models(0).version(), 1);
  load.Stop();
  EXPECT_THAT(load.failures(), ::testing::IsEmpty());
  const std::string log = (*server)->Log();
  size_t attempts = 0;
  for (size_t at = log.find("loading model cropshield-demo version 3"); at != std::string::npos;
       at = log.find("loading model cropshield-demo version 3", at + 1)) {
    ++attempts;
  }
  EXPECT_EQ(attempts, 1u) << log;
}

TEST(ReloadTest, AReloadWhileNoCallsComeStillHandsFreedMemoryBackToTheOs) {
  // A reload is work like a call: once it is over and the server is quiet again, the heap memory
  // the replaced version freed goes back to the OS (--release_memory_idle_ms), even if no call
  // came in between.
  Repository repository("reload_idle");
  auto server = ServerProcess::Start(
      kServer, {"--model=" + repository.root(), "--model_poll_interval_s=1",
                "--metrics_address=127.0.0.1:0", "--release_memory_idle_ms=200"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  const std::string releases = "cropshield_idle_memory_releases_total";
  ASSERT_TRUE((*server)->WaitForMetricAbove(releases, 0, std::chrono::seconds(20)))
      << "no release after start-up";
  // Quiet: releases stop once the start-up one is done (several periods pass).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double before = (*server)->MetricValue(releases);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_EQ((*server)->MetricValue(releases), before) << "releases while idle";

  repository.AddVersion(2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((*server)->Log().find("version 2 serving (watch)") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_THAT((*server)->Log(), HasSubstr("version 2 serving (watch)"));
  EXPECT_TRUE((*server)->WaitForMetricAbove(releases, before, std::chrono::seconds(10)))
      << "no release after the reload";
}

}  // namespace
}  // namespace cropshield
