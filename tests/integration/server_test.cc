// End-to-end tests of the real cropshield-server binary on a loopback port with the bundled demo
// model: health, reflection, Predict through the generated stub and the CLI, errors, drain.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::AsyncExplain;
using ::cropshield::testing::AsyncPredict;
using ::cropshield::testing::CommandResult;
using ::cropshield::testing::ConcurrentExplains;
using ::cropshield::testing::ConcurrentPredicts;
using ::cropshield::testing::kCli;
using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kSamples;
using ::cropshield::testing::kServer;
using ::cropshield::testing::kSourceDir;
using ::cropshield::testing::ReadFileOrDie;
using ::cropshield::testing::RunCommand;
using ::cropshield::testing::ServerProcess;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

const std::vector<std::string> kCropShieldLabels = {
    "Potato__early_blight",
    "Potato__healthy",
    "Potato__late_blight",
    "Sugarcane__bacterial_blight",
    "Sugarcane__healthy",
    "Sugarcane__red_rot",
    "Sugarcane__red_stripe",
    "Sugarcane__rust",
    "Tomato__bacterial_spot",
    "Tomato__early_blight",
    "Tomato__healthy",
    "Tomato__late_blight",
    "Tomato__leaf_mold",
    "Tomato__mosaic_virus",
    "Tomato__septoria_leaf_spot",
    "Tomato__spider_mites_(two_spotted_spider_mite)",
    "Tomato__target_spot",
    "Tomato__yellow_leaf_curl_virus",
    "Wheat__brown_rust",
    "Wheat__healthy",
    "Wheat__septoria",
    "Wheat__yellow_rust"};

std::map<std::string, std::string> SampleLabels() { return testing::SampleLabels(kSamples); }

std::unique_ptr<v1::CropShieldService::Stub> MakeStub(const ServerProcess& server) {
  return testing::MakeStub(server.address());
}

grpc::Status CallPredict(v1::CropShieldService::Stub* stub, const v1::PredictRequest& request,
                         v1::PredictResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return stub->Predict(&context, request, response);
}

v1::PredictRequest RequestFor(const std::string& bytes, int top_k = 0) {
  v1::PredictRequest request;
  request.mutable_image()->set_data(bytes);
  request.set_top_k(top_k);
  return request;
}

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // --device=cpu: Stats and the CLI name the device, and the default (auto) picks CUDA where a
    // GPU is (the H200 host).
    auto server = ServerProcess::Start(
        kServer, {"--model=" + kDemoRepository, "--device=cpu", "--max_image_bytes=3000000",
                  "--max_message_bytes=4000000", "--warmup_iterations=30", "--workers=2"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    // Health answers before the model is warm, and says NOT_SERVING until then.
    std::vector<HealthCheckResponse::ServingStatus> seen;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto health = server_->Health();
      if (health.ok()) {
        seen.push_back(*health);
        if (*health == HealthCheckResponse::SERVING) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    health_seen_ = new std::vector<HealthCheckResponse::ServingStatus>(seen);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete health_seen_;
  }

  static ServerProcess* server_;
  static std::vector<HealthCheckResponse::ServingStatus>* health_seen_;
};
ServerProcess* ServerTest::server_ = nullptr;
std::vector<HealthCheckResponse::ServingStatus>* ServerTest::health_seen_ = nullptr;

TEST_F(ServerTest, HealthIsNotServingUntilWarmUpThenServing) {
  ASSERT_FALSE(health_seen_->empty());
  EXPECT_EQ(health_seen_->back(), HealthCheckResponse::SERVING) << server_->Log();
  EXPECT_EQ(health_seen_->front(), HealthCheckResponse::NOT_SERVING)
      << "30 warm-up passes should leave time to observe NOT_SERVING";
  for (size_t i = 0; i + 1 < health_seen_->size(); ++i) {
    EXPECT_EQ((*health_seen_)[i], HealthCheckResponse::NOT_SERVING);
  }
  const std::string log = server_->Log();
  const size_t warm = log.find("warm-up");
  const size_t serving = log.find("SERVING model=cropshield-demo");
  ASSERT_NE(warm, std::string::npos) << log;
  ASSERT_NE(serving, std::string::npos) << log;
  EXPECT_LT(warm, serving);
  EXPECT_THAT(log, HasSubstr("classes=22"));
}

TEST_F(ServerTest, PredictRanksAllTwentyTwoLabelsAndGetsSamplesRight) {
  auto stub = MakeStub(*server_);
  const auto samples = SampleLabels();
  ASSERT_GE(samples.size(), 4u);
  for (const auto& [file, label] : samples) {
    v1::PredictResponse response;
    grpc::Status status =
        CallPredict(stub.get(), RequestFor(ReadFileOrDie(kSamples + "/" + file), 22), &response);
    ASSERT_TRUE(status.ok()) << file << ": " << status.error_message();
    ASSERT_EQ(response.predictions_size(), 22);
    std::set<std::string> labels;
    double sum = 0;
    for (int i = 0; i < response.predictions_size(); ++i) {
      const auto& p = response.predictions(i);
      labels.insert(p.label());
      sum += p.probability();
      EXPECT_EQ(kCropShieldLabels[p.class_index()], p.label());
      if (i > 0) EXPECT_LE(p.probability(), response.predictions(i - 1).probability());
    }
    EXPECT_EQ(labels, std::set<std::string>(kCropShieldLabels.begin(), kCropShieldLabels.end()));
    EXPECT_NEAR(sum, 1.0, 1e-4);
    EXPECT_EQ(response.predictions(0).label(), label) << file;
    EXPECT_EQ(response.model().name(), "cropshield-demo");
    EXPECT_EQ(response.model().version(), 1);
    EXPECT_GT(response.image_width(), 0);
    EXPECT_GT(response.timing().decode_us(), 0);
    EXPECT_GT(response.timing().inference_us(), 0);
    EXPECT_GE(response.timing().total_us(), response.timing().decode_us() +
                                                response.timing().preprocess_us() +
                                                response.timing().inference_us());
  }
}

TEST_F(ServerTest, DefaultTopKIsThreeAndRequestIdIsEchoed) {
  auto stub = MakeStub(*server_);
  const auto samples = SampleLabels();
  v1::PredictRequest request = RequestFor(ReadFileOrDie(kSamples + "/" + samples.begin()->first));
  request.set_request_id("req-42");
  v1::PredictResponse response;
  ASSERT_TRUE(CallPredict(stub.get(), request, &response).ok());
  EXPECT_EQ(response.predictions_size(), 3);
  EXPECT_EQ(response.request_id(), "req-42");
}

TEST_F(ServerTest, CorruptImagesAreInvalidArgumentAndServerKeepsServing) {
  auto stub = MakeStub(*server_);
  const std::string jpeg = ReadFileOrDie(kSamples + "/" + SampleLabels().begin()->first);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},
      {"definitely not an image", "unrecognised image format"},
      {jpeg.substr(0, jpeg.size() / 2), "JPEG"},
      {jpeg.substr(0, 40), "JPEG"},
      {std::string("\x89PNG\r\n\x1a\n", 8) + std::string(50, '\0'), "PNG"},
      {std::string("RIFF\x10\x00\x00\x00WEBPVP8 garbage", 23), "WebP"},
  };
  for (const auto& [bytes, expected] : cases) {
    v1::PredictResponse response;
    grpc::Status status = CallPredict(stub.get(), RequestFor(bytes), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << expected;
    EXPECT_THAT(status.error_message(), HasSubstr(expected)) << status.error_message();
  }
  auto health = server_->Health();
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);
  v1::PredictResponse response;
  EXPECT_TRUE(CallPredict(stub.get(), RequestFor(jpeg), &response).ok());
}

TEST_F(ServerTest, BadArgumentsGetPreciseCodes) {
  auto stub = MakeStub(*server_);
  const std::string jpeg = ReadFileOrDie(kSamples + "/" + SampleLabels().begin()->first);
  v1::PredictResponse response;
  grpc::Status status = CallPredict(stub.get(), RequestFor(jpeg, 23), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("top_k must be in 1..22"));
  status = CallPredict(stub.get(), RequestFor(jpeg, -1), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::PredictRequest wrong_model = RequestFor(jpeg);
  wrong_model.mutable_model()->set_name("no-such-model");
  EXPECT_EQ(CallPredict(stub.get(), wrong_model, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::PredictRequest wrong_version = RequestFor(jpeg);
  wrong_version.mutable_model()->set_version(99);
  EXPECT_EQ(CallPredict(stub.get(), wrong_version, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // Over --max_image_bytes (3 MB) but under --max_message_bytes (4 MB).
  status = CallPredict(stub.get(), RequestFor(std::string(3'500'000, 'x')), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("--max_image_bytes"));
  // Over --max_message_bytes: refused by gRPC before our handler runs.
  status = CallPredict(stub.get(), RequestFor(std::string(4'500'000, 'x')), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ServerTest, ReflectionListsTheServices) {
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  stream->WritesDone();
  std::set<std::string> services;
  for (const auto& s : response.list_services_response().service()) services.insert(s.name());
  EXPECT_TRUE(services.count("cropshield.v1.CropShieldService")) << response.DebugString();
  EXPECT_TRUE(services.count("grpc.health.v1.Health")) << response.DebugString();
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(ServerTest, CliPredictPrintsTableAndJson) {
  const auto samples = SampleLabels();
  const auto& [file, label] = *samples.begin();
  CommandResult table = RunCommand(
      absl::StrCat(kCli, " predict ", kSamples, "/", file, " --target=", server_->address()));
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_THAT(table.output, HasSubstr("1. " + label));
  EXPECT_THAT(table.output, HasSubstr("cropshield-demo v1"));

  CommandResult json = RunCommand(absl::StrCat(kCli, " predict ", kSamples, "/", file,
                                               " --json --top_k=5 --target=", server_->address()));
  EXPECT_EQ(json.exit_code, 0) << json.output;
  EXPECT_THAT(json.output, HasSubstr("\"predictions\":[{\"class_index\""));
  EXPECT_THAT(json.output, HasSubstr("\"label\":\"" + label + "\""));
  EXPECT_EQ(std::count(json.output.begin(), json.output.end(), '\n'), 1);
}

TEST_F(ServerTest, CliReportsFailuresWithStatusAndNonZeroExit) {
  const std::string bad = ::testing::TempDir() + "/not_an_image.jpg";
  std::ofstream(bad) << "garbage bytes";
  CommandResult result =
      RunCommand(absl::StrCat(kCli, " predict ", bad, " --target=", server_->address()),
                 /*merge_stderr=*/true);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.output, HasSubstr("INVALID_ARGUMENT"));

  CommandResult missing = RunCommand(
      absl::StrCat(kCli, " predict /no/such/file.jpg --target=", server_->address()), true);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.output, HasSubstr("cannot read"));

  CommandResult usage = RunCommand(absl::StrCat(kCli, " frobnicate"), true);
  EXPECT_EQ(usage.exit_code, 2);
}

TEST_F(ServerTest, CliHealthPrintsServing) {
  CommandResult result = RunCommand(absl::StrCat(kCli, " health --target=", server_->address()));
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "SERVING\n");
}

TEST(ServerLifecycleTest, SigtermFinishesAcceptedCallsAndExitsZero) {
  auto server = ServerProcess::Start(kServer, {"--model=" + kDemoRepository, "--workers=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  auto stub = MakeStub(**server);
  const std::string jpeg = ReadFileOrDie(kSamples + "/" + SampleLabels().begin()->first);

  constexpr int kCalls = 12;
  ConcurrentPredicts calls(kCalls, RequestFor(jpeg), std::chrono::seconds(120),
                           AsyncPredict(stub.get()));
  // Let the calls reach the service (in flight or done, per Stats), then ask the server to stop
  // while most are still waiting for the one worker. A fixed 100 ms was not always enough under
  // TSan (scripts/test-sanitizers.sh): 10 of 12 calls failed CANCELLED long before the 10 s grace
  // ended, so gRPC had not handed them to the service when the shutdown began.
  auto accepted = [&stub] {
    grpc::ClientContext context;
    v1::StatsResponse stats;
    if (!stub->Stats(&context, v1::StatsRequest(), &stats).ok()) return int64_t{0};
    int64_t calls = stats.in_flight();
    for (const v1::RpcCounts& rpc : stats.rpcs()) {
      if (rpc.rpc() == "Predict") calls += rpc.total();
    }
    return calls;
  };
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (accepted() < kCalls && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto exit_code = (*server)->StopWith(SIGTERM, std::chrono::seconds(60));
  ASSERT_TRUE(exit_code.ok()) << exit_code.status();
  EXPECT_EQ(*exit_code, 0) << (*server)->Log();
  const std::vector<grpc::Status>& statuses = calls.Wait();
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    EXPECT_EQ(calls.responses()[i].predictions_size(), 3);
  }
  EXPECT_THAT((*server)->Log(), HasSubstr("received SIGTERM"));
}

constexpr char kIdleReleases[] = "cropshield_idle_memory_releases_total";

int64_t IdleMemoryReleases(const ServerProcess& server) {
  return static_cast<int64_t>(server.MetricValue(kIdleReleases));
}

bool WaitForIdleMemoryReleases(const ServerProcess& server, int64_t releases) {
  return server.WaitForMetricAbove(kIdleReleases, static_cast<double>(releases - 1),
                                   std::chrono::seconds(30));
}

TEST(ServerLifecycleTest, FreedMemoryGoesBackToTheOsOnceIdleAfterStartUpAndAfterCalls) {
  auto server =
      ServerProcess::Start(kServer, {"--model=" + kDemoRepository, "--metrics_address=127.0.0.1:0",
                                     "--release_memory_idle_ms=100", "--workers=2"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  // Start-up (load and warm-up) counts as work: one release once nothing has happened for 100 ms.
  ASSERT_TRUE(WaitForIdleMemoryReleases(**server, 1)) << (*server)->MetricsText();
  const int64_t after_start = IdleMemoryReleases(**server);

  auto stub = MakeStub(**server);
  const auto samples = SampleLabels();
  for (const auto& [file, label] : samples) {
    v1::PredictResponse response;
    ASSERT_TRUE(
        CallPredict(stub.get(), RequestFor(ReadFileOrDie(kSamples + "/" + file)), &response).ok());
  }
  // A release once the calls are over (on a slow sanitizer build, gaps between the calls may have
  // had their own).
  EXPECT_TRUE(WaitForIdleMemoryReleases(**server, after_start + 1));
  // Idle with nothing new since (10 periods for any release still due): no more releases.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const int64_t idle = IdleMemoryReleases(**server);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(IdleMemoryReleases(**server), idle);
}

TEST(ServerLifecycleTest, MissingModelFailsFastWithClearMessage) {
  auto server = ServerProcess::Start(kServer, {"--model=/nonexistent/model/dir"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto exit_code = (*server)->StopWith(0, std::chrono::seconds(30));  // signal 0: just wait
  // The process exits by itself with status 1.
  ASSERT_TRUE(exit_code.ok());
  EXPECT_EQ(*exit_code, 1);
  EXPECT_THAT((*server)->Log(), HasSubstr("/nonexistent/model/dir is not a directory"));
}

}  // namespace
}  // namespace cropshield

namespace cropshield {
namespace {

grpc::Status CallExplain(v1::CropShieldService::Stub* stub, const v1::ExplainRequest& request,
                         v1::ExplainResponse* response, const std::string& token = "") {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  return stub->Explain(&context, request, response);
}

std::string LargestSample() {
  std::string best;
  int64_t best_size = -1;
  for (const auto& [file, label] : SampleLabels()) {
    const int64_t size = static_cast<int64_t>(ReadFileOrDie(kSamples + "/" + file).size());
    if (size > best_size) best = file, best_size = size;
  }
  return best;
}

TEST_F(ServerTest, ExplainIsComputedOnceThenServedFromCache) {
  auto stub = MakeStub(*server_);
  const auto samples = SampleLabels();
  const auto& [file, label] = *samples.begin();
  v1::ExplainRequest request;
  request.mutable_image()->set_data(ReadFileOrDie(kSamples + "/" + file));
  request.set_request_id("explain-1");
  v1::ExplainResponse first;
  grpc::Status status = CallExplain(stub.get(), request, &first);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(first.cached());
  EXPECT_EQ(first.target().label(), label);  // default target: the top-1 prediction
  EXPECT_EQ(first.predictions(0).label(), label);
  EXPECT_EQ(first.method(), v1::EXPLAIN_METHOD_GRAD_CAM);
  EXPECT_EQ(first.request_id(), "explain-1");
  // Default output: the feature-resolution map, float32 in [0, 1], peak exactly 1.
  ASSERT_EQ(first.feature_map().width(), 14);
  ASSERT_EQ(first.feature_map().height(), 14);
  ASSERT_EQ(first.feature_map().data().size(), 14u * 14u * 4u);
  std::vector<float> map(14 * 14);
  std::memcpy(map.data(), first.feature_map().data().data(), first.feature_map().data().size());
  EXPECT_FLOAT_EQ(*std::max_element(map.begin(), map.end()), 1.0f);
  EXPECT_GE(*std::min_element(map.begin(), map.end()), 0.0f);
  EXPECT_GT(first.timing().inference_us(), 0);
  EXPECT_GT(first.timing().explain_us(), 0);

  request.set_request_id("explain-2");
  v1::ExplainResponse second;
  ASSERT_TRUE(CallExplain(stub.get(), request, &second).ok());
  EXPECT_TRUE(second.cached());
  EXPECT_EQ(second.request_id(), "explain-2");
  EXPECT_EQ(second.feature_map().data(), first.feature_map().data());
  EXPECT_EQ(second.target().class_index(), first.target().class_index());

  // The same class asked by label and by index share one cache entry (the default "top-1" target
  // is its own entry: the class is only known after inference).
  request.set_class_label(label);
  v1::ExplainResponse by_label;
  ASSERT_TRUE(CallExplain(stub.get(), request, &by_label).ok());
  EXPECT_EQ(by_label.feature_map().data(), first.feature_map().data());
  request.set_class_index(by_label.target().class_index());
  v1::ExplainResponse by_index;
  ASSERT_TRUE(CallExplain(stub.get(), request, &by_index).ok());
  EXPECT_TRUE(by_index.cached());
  // Another method is another entry.
  request.set_method(v1::EXPLAIN_METHOD_LAYER_CAM);
  v1::ExplainResponse layer_cam;
  ASSERT_TRUE(CallExplain(stub.get(), request, &layer_cam).ok());
  EXPECT_FALSE(layer_cam.cached());
  EXPECT_EQ(layer_cam.method(), v1::EXPLAIN_METHOD_LAYER_CAM);
}

TEST_F(ServerTest, ExplainPlacesTheMapOnTheCroppedRegionOfANonSquarePhoto) {
  auto stub = MakeStub(*server_);
  const std::string file = LargestSample();
  v1::ExplainRequest request;
  request.mutable_image()->set_data(ReadFileOrDie(kSamples + "/" + file));
  request.mutable_outputs()->set_image_map(true);
  request.mutable_outputs()->set_heatmap_png(true);
  request.mutable_outputs()->set_overlay(true);
  request.mutable_outputs()->set_overlay_encoding(v1::IMAGE_ENCODING_JPEG);
  v1::ExplainResponse response;
  grpc::Status status = CallExplain(stub.get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const int width = response.image_map().width();
  const int height = response.image_map().height();
  ASSERT_GT(width, 1000) << file << " should be a large sample";
  ASSERT_NE(width, height) << file << " should be non-square";
  // torchvision geometry: shorter side -> 256, long side -> int(256 * long / short), crop 224.
  const int shorter = std::min(width, height);
  const int longer = std::max(width, height);
  const double scale = static_cast<double>(shorter) / 256.0;
  const int resized_long = static_cast<int>(256.0 * longer / shorter);
  // torchvision rounds the crop offset with Python's round(): ties to even, as std::nearbyint.
  const double crop_long_offset =
      std::nearbyint((resized_long - 224) / 2.0) * longer / resized_long;
  const double crop_long_extent = 224.0 * longer / resized_long;
  const v1::CropBox& box = response.crop_box();
  if (width > height) {
    EXPECT_NEAR(box.x(), crop_long_offset, 0.01);
    EXPECT_NEAR(box.y(), 16 * scale, 0.01);
    EXPECT_NEAR(box.width(), crop_long_extent, 0.01);
    EXPECT_NEAR(box.height(), 224 * scale, 0.01);
  } else {
    EXPECT_NEAR(box.x(), 16 * scale, 0.01);
    EXPECT_NEAR(box.y(), crop_long_offset, 0.01);
    EXPECT_NEAR(box.width(), 224 * scale, 0.01);
    EXPECT_NEAR(box.height(), crop_long_extent, 0.01);
  }

  std::vector<float> values(static_cast<size_t>(width) * height);
  ASSERT_EQ(response.image_map().data().size(), values.size() * 4);
  std::memcpy(values.data(), response.image_map().data().data(), values.size() * 4);
  // Outside the box: unseen, exactly 0. Inside: the map, whose peak is 1.
  double outside_max = 0;
  double inside_max = 0;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool inside = x + 0.5 >= box.x() && x + 0.5 < box.x() + box.width() &&
                          y + 0.5 >= box.y() && y + 0.5 < box.y() + box.height();
      double& m = inside ? inside_max : outside_max;
      m = std::max(m, static_cast<double>(values[static_cast<size_t>(y) * width + x]));
    }
  }
  EXPECT_EQ(outside_max, 0.0);
  EXPECT_GT(inside_max, 0.99);
  // PNG heatmap and JPEG overlay come at the photo's size.
  ASSERT_GT(response.heatmap_png().size(), 8u);
  EXPECT_EQ(response.heatmap_png().substr(1, 3), "PNG");
  EXPECT_EQ(response.overlay().substr(0, 2), "\xff\xd8");
}

TEST_F(ServerTest, ConcurrentIdenticalExplainsAreComputedOnce) {
  auto stub = MakeStub(*server_);
  v1::ExplainRequest request;
  // A photo no other test explains, with a method no other test uses.
  request.mutable_image()->set_data(ReadFileOrDie(kSamples + "/" + SampleLabels().rbegin()->first));
  request.set_method(v1::EXPLAIN_METHOD_HIRES_CAM);
  constexpr int kCalls = 16;
  ConcurrentExplains calls(kCalls, request, std::chrono::seconds(120), AsyncExplain(stub.get()));
  const std::vector<grpc::Status>& statuses = calls.Wait();
  const std::vector<v1::ExplainResponse>& responses = calls.responses();
  int computed = 0;
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    computed += responses[i].cached() ? 0 : 1;
    EXPECT_EQ(responses[i].feature_map().data(), responses[0].feature_map().data());
  }
  EXPECT_EQ(computed, 1);
}

TEST_F(ServerTest, ExplainRejectsBadTargetsAndOptions) {
  auto stub = MakeStub(*server_);
  v1::ExplainRequest request;
  request.mutable_image()->set_data(ReadFileOrDie(kSamples + "/" + SampleLabels().begin()->first));
  v1::ExplainResponse response;
  request.set_class_index(22);
  grpc::Status status = CallExplain(stub.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("class_index must be in 0..21"));
  request.set_class_label("Banana__healthy");
  status = CallExplain(stub.get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("Banana__healthy"));
  request.set_class_index(0);
  request.mutable_outputs()->set_overlay(true);
  request.mutable_outputs()->set_overlay_alpha(1.5f);
  EXPECT_EQ(CallExplain(stub.get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ExplainRequest corrupt;
  corrupt.mutable_image()->set_data("not an image at all");
  status = CallExplain(stub.get(), corrupt, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ServerTest, StatsFiguresMoveAsTrafficFlows) {
  auto stub = MakeStub(*server_);
  auto stats = [&stub]() {
    grpc::ClientContext context;
    v1::StatsResponse response;
    EXPECT_TRUE(stub->Stats(&context, v1::StatsRequest(), &response).ok());
    return response;
  };
  const v1::StatsResponse before = stats();
  ASSERT_EQ(before.models_size(), 1);
  EXPECT_EQ(before.models(0).name(), "cropshield-demo");
  EXPECT_EQ(before.models(0).device(), "cpu");
  EXPECT_EQ(before.models(0).labels_size(), 22);
  const std::string jpeg = ReadFileOrDie(kSamples + "/" + SampleLabels().begin()->first);
  v1::PredictResponse predicted;
  ASSERT_TRUE(CallPredict(stub.get(), RequestFor(jpeg), &predicted).ok());
  ASSERT_FALSE(CallPredict(stub.get(), RequestFor("junk"), &predicted).ok());
  const v1::StatsResponse after = stats();
  ASSERT_EQ(after.rpcs(0).rpc(), "Predict");
  EXPECT_EQ(after.rpcs(0).total(), before.rpcs(0).total() + 2);
  EXPECT_EQ(after.rpcs(0).errors_by_code().at("INVALID_ARGUMENT"),
            (before.rpcs(0).errors_by_code().count("INVALID_ARGUMENT")
                 ? before.rpcs(0).errors_by_code().at("INVALID_ARGUMENT")
                 : 0) +
                1);
  EXPECT_EQ(after.rpc_latency(0).name(), "Predict");
  EXPECT_GT(after.rpc_latency(0).count(), before.rpc_latency(0).count());
  EXPECT_GT(after.rpc_latency(0).p50_us(), 0);
  EXPECT_EQ(after.stage_latency(3).name(), "inference");
  EXPECT_GT(after.stage_latency(3).count(), before.stage_latency(3).count());
  EXPECT_GT(after.uptime_seconds(), before.uptime_seconds());
  EXPECT_EQ(after.explain_cache().shards_size(), 16);
}

TEST_F(ServerTest, ExpiredCallsAreDroppedBeforeInference) {
  auto stub = MakeStub(*server_);
  auto stats = [&stub]() {
    grpc::ClientContext context;
    v1::StatsResponse response;
    EXPECT_TRUE(stub->Stats(&context, v1::StatsRequest(), &response).ok());
    return response;
  };
  const int64_t inferences_before = stats().stage_latency(3).count();
  // Deadlines far shorter than decoding a large photo: every call expires while queued.
  const v1::PredictRequest request = RequestFor(ReadFileOrDie(kSamples + "/" + LargestSample()));
  constexpr int kCalls = 24;
  ConcurrentPredicts calls(kCalls, request, std::chrono::milliseconds(3), AsyncPredict(stub.get()));
  const std::vector<grpc::Status>& statuses = calls.Wait();
  int expired = 0;
  for (const grpc::Status& s : statuses)
    expired += s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  EXPECT_GE(expired, kCalls - 1);
  // Let the server drain what it had queued, then count the forwards it actually ran.
  v1::StatsResponse after;
  for (int i = 0; i < 200; ++i) {
    after = stats();
    if (after.in_flight() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(after.in_flight(), 0);
  EXPECT_LT(after.stage_latency(3).count() - inferences_before, kCalls / 2)
      << "expired calls should be skipped, not computed";
  v1::PredictResponse ok;
  EXPECT_TRUE(CallPredict(stub.get(), request, &ok).ok());
}

TEST(AdminTest, ClearCacheNeedsTheTokenAndFreesEntries) {
  const std::string token_file = ::testing::TempDir() + "/admin_token";
  std::ofstream(token_file) << "s3cret-token\n";
  auto server = ServerProcess::Start(
      kServer, {"--model=" + kDemoRepository, "--admin_token_file=" + token_file,
                "--predict_cache_bytes=1000000"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  EXPECT_THAT((*server)->Log(), ::testing::Not(HasSubstr("s3cret-token")));
  auto stub = MakeStub(**server);
  v1::ExplainRequest explain;
  explain.mutable_image()->set_data(ReadFileOrDie(kSamples + "/" + SampleLabels().begin()->first));
  v1::ExplainResponse explained;
  ASSERT_TRUE(CallExplain(stub.get(), explain, &explained).ok());
  ASSERT_FALSE(explained.cached());
  // The optional Predict cache (on in this server) answers a repeated photo from memory.
  v1::PredictResponse predicted;
  ASSERT_TRUE(CallPredict(stub.get(), RequestFor(explain.image().data()), &predicted).ok());
  EXPECT_FALSE(predicted.cached());
  v1::PredictResponse repeated;
  ASSERT_TRUE(CallPredict(stub.get(), RequestFor(explain.image().data()), &repeated).ok());
  EXPECT_TRUE(repeated.cached());
  EXPECT_EQ(repeated.predictions(0).label(), predicted.predictions(0).label());

  auto clear = [&stub](const std::string& token, v1::ClearCacheResponse* response) {
    grpc::ClientContext context;
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    return stub->ClearCache(&context, v1::ClearCacheRequest(), response);
  };
  v1::ClearCacheResponse response;
  grpc::Status status = clear("", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  status = clear("wrong-token", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), ::testing::Not(HasSubstr("s3cret")));
  ASSERT_TRUE(CallExplain(stub.get(), explain, &explained).ok());
  EXPECT_TRUE(explained.cached()) << "refused clears must not clear";

  status = clear("s3cret-token", &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.explain_entries_freed(), 1);
  EXPECT_GT(response.explain_bytes_freed(), 14 * 14 * 4);
  EXPECT_EQ(response.predict_entries_freed(), 1);
  ASSERT_TRUE(CallExplain(stub.get(), explain, &explained).ok());
  EXPECT_FALSE(explained.cached());

  // The CLI reads the token from its flag.
  CommandResult cli = RunCommand(
      absl::StrCat(kCli, " clear-cache --token=s3cret-token --target=", (*server)->address()));
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr("explain cache: 1 entries"));
  CommandResult denied = RunCommand(
      absl::StrCat(kCli, " clear-cache --target=", (*server)->address()), /*merge_stderr=*/true);
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));
}

TEST_F(ServerTest, CliExplainWritesHeatmapOverlayAndRawMapThenHitsTheCache) {
  const std::string file = LargestSample();
  const std::string dir = ::testing::TempDir();
  const std::string command =
      absl::StrCat(kCli, " explain ", kSamples, "/", file, " --out=", dir,
                   "/heat.png --overlay=", dir, "/overlay.png --raw=", dir,
                   "/map.npy --method=grad_cam_plus_plus --target=", server_->address());
  CommandResult first = RunCommand(command);
  EXPECT_EQ(first.exit_code, 0) << first.output;
  EXPECT_THAT(first.output, HasSubstr("computed"));
  EXPECT_THAT(first.output, HasSubstr("wrote " + dir + "/overlay.png"));
  CommandResult second = RunCommand(command);
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_THAT(second.output, HasSubstr("cache hit"));
  EXPECT_EQ(ReadFileOrDie(dir + "/heat.png").substr(1, 3), "PNG");
  EXPECT_EQ(ReadFileOrDie(dir + "/overlay.png").substr(1, 3), "PNG");
  const std::string npy = ReadFileOrDie(dir + "/map.npy");
  EXPECT_EQ(npy.substr(1, 5), "NUMPY");
  EXPECT_THAT(npy, HasSubstr("'shape': (14, 14)"));

  CommandResult stats = RunCommand(absl::StrCat(kCli, " stats --target=", server_->address()));
  EXPECT_EQ(stats.exit_code, 0);
  EXPECT_THAT(stats.output, HasSubstr("model cropshield-demo v1 on cpu"));
  EXPECT_THAT(stats.output, HasSubstr("explain cache:"));
}

}  // namespace
}  // namespace cropshield
