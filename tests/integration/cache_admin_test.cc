// Admin and cache promises of the real cropshield-server: the admin token from
// CROPSHIELD_ADMIN_TOKEN, ClearCache scoped to a model version or to one cache, the caches' byte
// budgets (LRU eviction) and their TTL.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/promises_util.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::CallClearCache;
using ::cropshield::testing::CallExplain;
using ::cropshield::testing::CallPredict;
using ::cropshield::testing::CallStats;
using ::cropshield::testing::ExplainOf;
using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::MakeStub;
using ::cropshield::testing::MetricSeries;
using ::cropshield::testing::Sample;
using ::cropshield::testing::StartServing;
using ::cropshield::testing::WriteTokenFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPhotoA[] = "potato_healthy_640x480.jpg";
constexpr char kPhotoB[] = "sugarcane_rust_640x480.jpg";
constexpr char kPhotoC[] = "wheat_brown_rust_640x480.jpg";
constexpr char kPhotoD[] = "tomato_healthy_512x512.jpg";

// Sets an environment variable for the servers started in its scope (they inherit it at fork).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

grpc::Status Reload(v1::CropShieldService::Stub* stub, const std::string& token,
                    v1::ReloadModelResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  return stub->ReloadModel(&context, v1::ReloadModelRequest(), response);
}

// CROPSHIELD_ADMIN_TOKEN is the admin token when no --admin_token_file is given: ClearCache and
// ReloadModel need it (also from loopback), it never reaches the log, and a token file wins over
// it.
TEST(AdminTokenTest, TheEnvironmentTokenGuardsAdminRpcs) {
  std::unique_ptr<testing::ServerProcess> server;
  {
    ScopedEnv token("CROPSHIELD_ADMIN_TOKEN", "env-t0ken-42");
    server = StartServing({"--model=" + kDemoRepository, "--device=cpu"});
  }
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(server->Log(), HasSubstr("admin=token"));
  EXPECT_THAT(server->Log(), Not(HasSubstr("env-t0ken-42")));
  auto stub = MakeStub(server->address());
  v1::ClearCacheResponse cleared;
  for (const std::string& wrong :
       {std::string(), std::string("env-t0ken-4"), std::string("env-t0ken-42x")}) {
    SCOPED_TRACE("token '" + wrong + "'");
    grpc::Status status = CallClearCache(stub.get(), {}, wrong, &cleared);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_THAT(status.error_message(), Not(HasSubstr("env-t0ken")));
    v1::ReloadModelResponse reloaded;
    status = Reload(stub.get(), wrong, &reloaded);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  }
  grpc::Status status = CallClearCache(stub.get(), {}, "env-t0ken-42", &cleared);
  EXPECT_TRUE(status.ok()) << status.error_message();
  v1::ReloadModelResponse reloaded;
  status = Reload(stub.get(), "env-t0ken-42", &reloaded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(reloaded.reloaded());  // the highest version is already serving
  EXPECT_EQ(reloaded.current().name(), "cropshield-demo");

  // With --admin_token_file as well, the file's token is the one.
  std::unique_ptr<testing::ServerProcess> with_file;
  {
    ScopedEnv token("CROPSHIELD_ADMIN_TOKEN", "env-t0ken-42");
    with_file = StartServing({"--model=" + kDemoRepository, "--device=cpu",
                              "--admin_token_file=" + WriteTokenFile("admin_file", "file-t0ken")});
  }
  ASSERT_NE(with_file, nullptr);
  auto file_stub = MakeStub(with_file->address());
  status = CallClearCache(file_stub.get(), {}, "env-t0ken-42", &cleared);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  status = CallClearCache(file_stub.get(), {}, "file-t0ken", &cleared);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

class CacheTest : public ::testing::Test {
 protected:
  static constexpr char kToken[] = "cache-admin-t0ken";

  static std::unique_ptr<testing::ServerProcess> Start(std::vector<std::string> extra) {
    std::vector<std::string> args = {"--model=" + kDemoRepository, "--device=cpu",
                                     "--admin_token_file=" + WriteTokenFile("cache_admin", kToken)};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartServing(args);
  }
  static bool ExplainCached(v1::CropShieldService::Stub* stub, const std::string& photo,
                            int class_index = -1) {
    v1::ExplainResponse response;
    grpc::Status status = CallExplain(stub, ExplainOf(photo, class_index), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.cached();
  }
  static bool PredictCached(v1::CropShieldService::Stub* stub, const std::string& photo) {
    v1::PredictResponse response;
    grpc::Status status = CallPredict(stub, photo, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.cached();
  }
  static v1::ClearCacheResponse Clear(v1::CropShieldService::Stub* stub,
                                      const v1::ClearCacheRequest& request) {
    v1::ClearCacheResponse response;
    grpc::Status status = CallClearCache(stub, request, kToken, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
};

// ClearCache with a model version clears only that version's entries; with explain_cache or
// predict_cache set, only that cache; with neither, both.
TEST_F(CacheTest, ClearCacheClearsOnlyTheAskedVersionAndCache) {
  auto server = Start({"--predict_cache_bytes=1000000"});
  ASSERT_NE(server, nullptr);
  auto stub = MakeStub(server->address());
  const std::string a = Sample(kPhotoA);
  const std::string b = Sample(kPhotoB);
  ASSERT_FALSE(ExplainCached(stub.get(), a));
  ASSERT_FALSE(ExplainCached(stub.get(), b));
  ASSERT_FALSE(PredictCached(stub.get(), a));
  ASSERT_TRUE(ExplainCached(stub.get(), a));
  ASSERT_TRUE(PredictCached(stub.get(), a));

  // Another version, another model: NOT_FOUND (not a success that freed nothing, which hid
  // typos), and nothing of version 1 of cropshield-demo goes.
  v1::ClearCacheRequest other_version;
  other_version.mutable_model()->set_version(2);
  v1::ClearCacheResponse freed;
  grpc::Status status = CallClearCache(stub.get(), other_version, kToken, &freed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("version 2 is not served"));
  v1::ClearCacheRequest other_model;
  other_model.mutable_model()->set_name("another-model");
  status = CallClearCache(stub.get(), other_model, kToken, &freed);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("'another-model' is not served"));
  EXPECT_TRUE(ExplainCached(stub.get(), a));
  EXPECT_TRUE(PredictCached(stub.get(), a));

  // The Predict cache alone.
  v1::ClearCacheRequest predict_only;
  predict_only.set_predict_cache(true);
  freed = Clear(stub.get(), predict_only);
  EXPECT_EQ(freed.predict_entries_freed(), 1);
  EXPECT_GT(freed.predict_bytes_freed(), 0);
  EXPECT_EQ(freed.explain_entries_freed(), 0);
  EXPECT_EQ(freed.explain_bytes_freed(), 0);
  EXPECT_TRUE(ExplainCached(stub.get(), a));
  EXPECT_FALSE(PredictCached(stub.get(), a));  // computed again, and cached again

  // The explanation cache of version 1 alone.
  v1::ClearCacheRequest explain_v1;
  explain_v1.set_explain_cache(true);
  explain_v1.mutable_model()->set_version(1);
  freed = Clear(stub.get(), explain_v1);
  EXPECT_EQ(freed.explain_entries_freed(), 2);
  EXPECT_GT(freed.explain_bytes_freed(), 2 * 14 * 14 * 4);
  EXPECT_EQ(freed.predict_entries_freed(), 0);
  EXPECT_FALSE(ExplainCached(stub.get(), b));
  EXPECT_TRUE(PredictCached(stub.get(), a));

  // The served model by name, every version, both caches.
  v1::ClearCacheRequest whole_model;
  whole_model.mutable_model()->set_name("cropshield-demo");
  freed = Clear(stub.get(), whole_model);
  EXPECT_EQ(freed.explain_entries_freed(), 1);  // b, explained again above
  EXPECT_EQ(freed.predict_entries_freed(), 1);
  const v1::StatsResponse stats = CallStats(stub.get());
  EXPECT_EQ(stats.explain_cache().entries(), 0);
  EXPECT_EQ(stats.predict_cache().entries(), 0);
}

// Each cache keeps to its byte budget: once full, the least recently used entries are evicted
// (Stats counts them) and the newest stay.
TEST_F(CacheTest, CachesKeepToTheirByteBudgetsAndEvictTheLeastRecentlyUsed) {
  constexpr int64_t kExplainBudget = 6000;
  constexpr int64_t kPredictBudget = 1000;
  auto server = Start({"--cache_shards=1", absl::StrCat("--explain_cache_bytes=", kExplainBudget),
                       absl::StrCat("--predict_cache_bytes=", kPredictBudget)});
  ASSERT_NE(server, nullptr);
  auto stub = MakeStub(server->address());
  const std::string photo = Sample(kPhotoA);

  // One explanation (a 14x14 float map plus predictions) takes about 1.3 kB.
  ASSERT_FALSE(ExplainCached(stub.get(), photo, 0));
  const int64_t entry = CallStats(stub.get()).explain_cache().bytes();
  ASSERT_GT(entry, 14 * 14 * 4);
  ASSERT_LE(entry, kExplainBudget / 4) << "the test needs room for four entries";
  constexpr int kClasses = 10;  // ten different explanations of one photo
  for (int c = 1; c < kClasses; ++c) ASSERT_FALSE(ExplainCached(stub.get(), photo, c));
  v1::CacheStats explain = CallStats(stub.get()).explain_cache();
  EXPECT_EQ(explain.capacity_bytes(), kExplainBudget);
  EXPECT_LE(explain.bytes(), kExplainBudget);
  EXPECT_GE(explain.entries(), 3);
  EXPECT_LE(explain.entries(), kExplainBudget / entry + 1);
  EXPECT_EQ(explain.evictions(), kClasses - explain.entries());
  EXPECT_TRUE(ExplainCached(stub.get(), photo, kClasses - 1));  // the newest stays
  EXPECT_FALSE(ExplainCached(stub.get(), photo, 0));            // the oldest went

  // The Predict cache: four photos' answers (about 400 bytes each), room for two.
  for (const char* file : {kPhotoA, kPhotoB, kPhotoC, kPhotoD}) {
    ASSERT_FALSE(PredictCached(stub.get(), Sample(file))) << file;
  }
  v1::CacheStats predict = CallStats(stub.get()).predict_cache();
  EXPECT_EQ(predict.capacity_bytes(), kPredictBudget);
  EXPECT_LE(predict.bytes(), kPredictBudget);
  EXPECT_GE(predict.entries(), 2);
  EXPECT_LT(predict.entries(), 4);
  EXPECT_EQ(predict.evictions(), 4 - predict.entries());
  EXPECT_TRUE(PredictCached(stub.get(), Sample(kPhotoD)));   // the newest stays
  EXPECT_FALSE(PredictCached(stub.get(), Sample(kPhotoA)));  // the oldest went
}

// --cache_ttl_s: an entry answers repeats until its TTL has passed, then the call is computed
// again; the expirations are counted in the metrics.
TEST_F(CacheTest, EntriesExpireAfterTheTtl) {
  auto server =
      Start({"--cache_ttl_s=1", "--predict_cache_bytes=1000000", "--metrics_address=127.0.0.1:0"});
  ASSERT_NE(server, nullptr);
  auto stub = MakeStub(server->address());
  const std::string photo = Sample(kPhotoA);
  ASSERT_FALSE(ExplainCached(stub.get(), photo));
  ASSERT_FALSE(PredictCached(stub.get(), photo));
  EXPECT_TRUE(ExplainCached(stub.get(), photo));
  EXPECT_TRUE(PredictCached(stub.get(), photo));
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_FALSE(ExplainCached(stub.get(), photo));
  EXPECT_FALSE(PredictCached(stub.get(), photo));
  const std::string metrics = server->MetricsText();
  EXPECT_GE(MetricSeries(metrics, "cropshield_cache_expirations_total{cache=\"explain\"}"), 1)
      << metrics;
  EXPECT_GE(MetricSeries(metrics, "cropshield_cache_expirations_total{cache=\"predict\"}"), 1);
  // Computed again, so cached again.
  EXPECT_TRUE(ExplainCached(stub.get(), photo));
}

}  // namespace
}  // namespace cropshield
