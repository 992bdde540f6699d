// Promises of the real cropshield-server that no other test held it to: UNAVAILABLE while the model
// loads, RESOURCE_EXHAUSTED from a full queue, a second SIGTERM ending the drain delay,
// --max_image_pixels on both image RPCs, concurrent Predicts sharing forwards (the batch-size
// histogram), reduced precision refused on CPU, and --optimize keeping only an optimised module
// whose outputs agree with the original.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <chrono>
#include <cmath>
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

using ::cropshield::testing::AsyncPredict;
using ::cropshield::testing::CallExplain;
using ::cropshield::testing::CallPredict;
using ::cropshield::testing::CallStats;
using ::cropshield::testing::ConcurrentPredicts;
using ::cropshield::testing::ExitCodeOfFailedStart;
using ::cropshield::testing::ExplainOf;
using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kServer;
using ::cropshield::testing::MakeStub;
using ::cropshield::testing::MetricSeries;
using ::cropshield::testing::Sample;
using ::cropshield::testing::ServerProcess;
using ::cropshield::testing::StartServing;
using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

constexpr char kSmallPhoto[] = "potato_healthy_640x480.jpg";       // 307,200 pixels
constexpr char kMediumPhoto[] = "potato_late_blight_800x600.jpg";  // 480,000 pixels
constexpr char kLargePhoto[] = "wheat_yellow_rust_1600x1200.jpg";

v1::PredictRequest PredictOf(const std::string& image) {
  v1::PredictRequest request;
  request.mutable_image()->set_data(image);
  return request;
}

// The server listens before it loads the model (health answers NOT_SERVING meanwhile); calls that
// need the model are answered UNAVAILABLE with a retry hint in the message until it is loaded.
TEST(LoadingTest, CallsWhileTheModelLoadsGetUnavailableThenTheyAreServed) {
  // 1000 warm-up forwards of the demo model: seconds of loading (3 ms each on a 2-core VM).
  auto server = ServerProcess::Start(
      kServer, {"--model=" + kDemoRepository, "--device=cpu", "--warmup_iterations=1000"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = MakeStub((*server)->address());
  const std::string photo = Sample(kSmallPhoto);

  std::vector<grpc::Status> before_ok;
  v1::PredictResponse served;
  bool ok = false;
  bool explain_checked = false;
  // Generous: 1000 warm-up passes take minutes under ASan on a busy 2-core machine.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(8);
  while (!ok && std::chrono::steady_clock::now() < give_up) {
    grpc::Status status = CallPredict(stub.get(), photo, &served, std::chrono::seconds(10));
    ok = status.ok();
    if (ok) break;
    before_ok.push_back(status);
    if (!explain_checked) {
      explain_checked = true;
      // Still loading: Explain is refused the same way, health says NOT_SERVING, and Stats (which
      // needs no model) answers with no model in it.
      v1::ExplainResponse explained;
      grpc::Status explain = CallExplain(stub.get(), ExplainOf(photo), &explained);
      EXPECT_EQ(explain.error_code(), grpc::StatusCode::UNAVAILABLE) << explain.error_message();
      auto health = (*server)->Health();
      ASSERT_TRUE(health.ok()) << health.status();
      EXPECT_EQ(*health, HealthCheckResponse::NOT_SERVING);
      EXPECT_EQ(CallStats(stub.get()).models_size(), 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(ok) << "no Predict succeeded within 8 minutes\n" << (*server)->Log();
  ASSERT_FALSE(before_ok.empty()) << "the model was loaded before the first call: no UNAVAILABLE "
                                     "seen (the test needs a longer load)";
  for (const grpc::Status& status : before_ok) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("no model is loaded yet; retry shortly"));
  }
  EXPECT_EQ(served.predictions_size(), 3);
  EXPECT_EQ(served.model().name(), "cropshield-demo");
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(30)).ok());
}

// Admission through the server's queues (not the in-flight limit, which is off here): with one
// worker and room for one waiting request, a burst gets RESOURCE_EXHAUSTED with the retry hint,
// each refusal is counted in cropshield_queue_rejected_total, and the server serves on.
TEST(OverloadTest, AFullQueueAnswersResourceExhaustedWithARetryHint) {
  auto server = StartServing({"--model=" + kDemoRepository, "--device=cpu", "--workers=1",
                              "--queue_capacity=1", "--max_inflight_calls=0",
                              "--retry_pushback_ms=300", "--metrics_address=127.0.0.1:0"});
  ASSERT_NE(server, nullptr);
  auto stub = MakeStub(server->address());
  const v1::PredictRequest request = PredictOf(Sample(kLargePhoto));
  int rejected = 0;
  int served = 0;
  for (int round = 0; round < 5 && rejected == 0; ++round) {
    constexpr int kCalls = 24;
    ConcurrentPredicts calls(kCalls, request, std::chrono::seconds(120), AsyncPredict(stub.get()));
    const std::vector<grpc::Status>& statuses = calls.Wait();
    for (int i = 0; i < kCalls; ++i) {
      if (statuses[i].ok()) {
        ++served;
        EXPECT_EQ(calls.responses()[i].predictions_size(), 3);
        continue;
      }
      ++rejected;
      EXPECT_EQ(statuses[i].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
          << statuses[i].error_message();
      EXPECT_THAT(statuses[i].error_message(), HasSubstr("server queue is full (1 requests"));
      auto hint = calls.trailers(i).find("grpc-retry-pushback-ms");
      ASSERT_NE(hint, calls.trailers(i).end()) << "no retry hint in the trailers";
      EXPECT_EQ(std::string(hint->second.data(), hint->second.size()), "300");
    }
  }
  EXPECT_GT(rejected, 0) << "a burst of 24 never filled a queue of 1";
  EXPECT_GE(served, 1);
  const std::string metrics = server->MetricsText();
  double counted = 0;
  for (const char* queue : {"executor", "predict_batcher"}) {
    const double value = MetricSeries(
        metrics, absl::StrCat("cropshield_queue_rejected_total{queue=\"", queue, "\"}"));
    if (value > 0) counted += value;
  }
  EXPECT_EQ(counted, rejected) << metrics;
  EXPECT_EQ(MetricSeries(metrics, "cropshield_queue_capacity{queue=\"executor\"}"), 1);
  v1::PredictResponse after;
  EXPECT_TRUE(CallPredict(stub.get(), request.image().data(), &after).ok());
}

// --drain_delay_ms keeps a stopping server answering (health NOT_SERVING) for the whole delay; a
// second SIGTERM ends the delay at once and the server exits 0.
TEST(DrainTest, ASecondSigtermEndsTheDrainDelayEarly) {
  auto server = StartServing({"--model=" + kDemoRepository, "--device=cpu",
                              "--drain_delay_ms=60000", "--shutdown_grace_ms=5000"});
  ASSERT_NE(server, nullptr);
  auto stub = MakeStub(server->address());
  const std::string photo = Sample(kSmallPhoto);
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  ASSERT_TRUE(server->WaitForLog("serving on for 60000 ms", std::chrono::seconds(30)).ok())
      << server->Log();
  auto health = server->Health();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::NOT_SERVING);
  // Within the delay: calls are still answered and the process stays.
  v1::PredictResponse response;
  grpc::Status status = CallPredict(stub.get(), photo, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_FALSE(server->WaitExit(std::chrono::seconds(1)).ok()) << "exited during the drain delay";

  const auto second = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(server->pid(), SIGTERM), 0);
  absl::StatusOr<int> exit_code = server->WaitExit(std::chrono::seconds(30));
  ASSERT_TRUE(exit_code.ok()) << "still running 30 s after the second SIGTERM (the delay is 60 s)";
  EXPECT_EQ(*exit_code, 0) << server->Log();
  EXPECT_LT(std::chrono::steady_clock::now() - second, std::chrono::seconds(20));
  EXPECT_THAT(server->Log(), HasSubstr("second stop signal: ending the drain delay early"));
}

// --max_image_pixels applies to Predict and Explain: a photo of exactly the limit is served, a
// larger one is INVALID_ARGUMENT naming its size and the limit.
TEST(LimitsTest, MaxImagePixelsIsEnforcedOnPredictAndExplain) {
  auto server =
      StartServing({"--model=" + kDemoRepository, "--device=cpu", "--max_image_pixels=307200"});
  ASSERT_NE(server, nullptr);
  auto stub = MakeStub(server->address());
  v1::PredictResponse predicted;
  grpc::Status status = CallPredict(stub.get(), Sample(kSmallPhoto), &predicted);
  EXPECT_TRUE(status.ok()) << status.error_message();
  v1::ExplainResponse explained;
  status = CallExplain(stub.get(), ExplainOf(Sample(kSmallPhoto)), &explained);
  EXPECT_TRUE(status.ok()) << status.error_message();

  for (const char* file : {kMediumPhoto, kLargePhoto}) {
    SCOPED_TRACE(file);
    status = CallPredict(stub.get(), Sample(file), &predicted);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("over the limit of 307200"));
    status = CallExplain(stub.get(), ExplainOf(Sample(file)), &explained);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("over the limit of 307200"));
  }
  // Stats counts the four refusals under their code.
  const v1::StatsResponse stats = CallStats(stub.get());
  int refused = 0;
  for (const v1::RpcCounts& rpc : stats.rpcs()) {
    if (rpc.rpc() != "Predict" && rpc.rpc() != "Explain") continue;
    auto it = rpc.errors_by_code().find("INVALID_ARGUMENT");
    if (it != rpc.errors_by_code().end()) refused += static_cast<int>(it->second);
  }
  EXPECT_EQ(refused, 4);
}

struct BatchFigures {
  double batches = 0;  // forwards
  double calls = 0;    // calls in them
  double single = 0;   // forwards of one call
};

BatchFigures PredictBatches(const ServerProcess& server) {
  const std::string text = server.MetricsText();
  BatchFigures f;
  f.batches = MetricSeries(text, "cropshield_batch_size_count{batcher=\"predict\"}");
  f.calls = MetricSeries(text, "cropshield_batch_size_sum{batcher=\"predict\"}");
  f.single = MetricSeries(text, "cropshield_batch_size_bucket{batcher=\"predict\",le=\"1\"}");
  return f;
}

// 16 concurrent Predicts reach the model in shared forwards (cropshield_batch_size), and each
// answer is what the photo gets alone. With --max_batch_size=1 the same burst takes 16 forwards:
// the histogram tells the two apart.
TEST(BatchingTest, ConcurrentPredictsShareForwards) {
  constexpr int kCalls = 16;
  const std::string photo = Sample(kSmallPhoto);
  for (const bool batched : {true, false}) {
    SCOPED_TRACE(batched ? "max_batch_size 8" : "max_batch_size 1");
    auto server = StartServing({"--model=" + kDemoRepository, "--device=cpu", "--workers=2",
                                "--metrics_address=127.0.0.1:0",
                                batched ? "--max_batch_size=8" : "--max_batch_size=1",
                                // A batch waits up to 0.5 s for more calls after its first.
                                "--max_queue_delay_us=500000"});
    ASSERT_NE(server, nullptr);
    auto stub = MakeStub(server->address());
    v1::PredictResponse alone;
    ASSERT_TRUE(CallPredict(stub.get(), photo, &alone).ok());
    const BatchFigures before = PredictBatches(*server);
    ASSERT_EQ(before.batches, 1);

    ConcurrentPredicts calls(kCalls, PredictOf(photo), std::chrono::seconds(120),
                             AsyncPredict(stub.get()));
    const std::vector<grpc::Status>& statuses = calls.Wait();
    for (int i = 0; i < kCalls; ++i) {
      ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
      const v1::PredictResponse& r = calls.responses()[i];
      ASSERT_EQ(r.predictions_size(), 3);
      for (int k = 0; k < 3; ++k) {
        EXPECT_EQ(r.predictions(k).class_index(), alone.predictions(k).class_index());
        EXPECT_NEAR(r.predictions(k).probability(), alone.predictions(k).probability(), 1e-5);
      }
    }
    const BatchFigures after = PredictBatches(*server);
    const double batches = after.batches - before.batches;
    EXPECT_EQ(after.calls - before.calls, kCalls);
    if (batched) {
      EXPECT_LE(batches, kCalls / 2) << "16 concurrent calls took " << batches << " forwards";
      EXPECT_LT(after.single - before.single, batches) << "no forward held more than one call";
    } else {
      EXPECT_EQ(batches, kCalls);
      EXPECT_EQ(after.single - before.single, kCalls);
    }
  }
}

// --precision fp16/bf16 need CUDA: on CPU the server refuses to start and says why, as it does for
// an unknown precision (the CUDA side: gpu_promises_test.cc).
TEST(PrecisionTest, ReducedPrecisionOnCpuIsRefusedAtStart) {
  for (const char* precision : {"fp16", "bf16"}) {
    std::string log;
    EXPECT_EQ(ExitCodeOfFailedStart({"--model=" + kDemoRepository, "--device=cpu",
                                     absl::StrCat("--precision=", precision)},
                                    &log),
              1);
    EXPECT_THAT(log, HasSubstr(absl::StrCat("--precision ", precision, " needs a CUDA device")));
    EXPECT_THAT(log, ::testing::Not(HasSubstr("SERVING model=")));
  }
  std::string log;
  EXPECT_EQ(ExitCodeOfFailedStart(
                {"--model=" + kDemoRepository, "--device=cpu", "--precision=fp64"}, &log),
            1);
  EXPECT_THAT(log, HasSubstr("unknown precision 'fp64'"));
}

class OptimizeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    packages_ = new std::string(testing::MakeTestPackages("cropshield_promises_packages"));
  }
  static void TearDownTestSuite() {
    testing::RemoveTree(*packages_);
    delete packages_;
  }
  static std::string* packages_;
};
std::string* OptimizeTest::packages_ = nullptr;

// --optimize (on by default) keeps the frozen + optimised module only when its outputs agree with
// the original's within 1e-4. The optimize_mismatch package's do not (make_test_packages.py): the
// server logs why and serves the original module, answering exactly as a server started with
// --optimize=false; a package whose optimised module agrees is served optimised.
TEST_F(OptimizeTest, AnOptimisedModuleThatDisagreesIsNotServed) {
  const std::string mismatch = *packages_ + "/optimize_mismatch";
  auto optimising = StartServing({"--model=" + mismatch, "--device=cpu", "--threads=1"});
  ASSERT_NE(optimising, nullptr);
  EXPECT_THAT(optimising->Log(),
              HasSubstr("model offset version 1 serving (startup): original module, optimised "
                        "outputs differ by"));
  EXPECT_THAT(optimising->Log(), HasSubstr("limit 1e-4"));
  auto plain =
      StartServing({"--model=" + mismatch, "--device=cpu", "--threads=1", "--optimize=false"});
  ASSERT_NE(plain, nullptr);
  EXPECT_THAT(plain->Log(), HasSubstr("serving (startup): original module, disabled by flag"));

  auto optimising_stub = MakeStub(optimising->address());
  auto plain_stub = MakeStub(plain->address());
  for (const char* file : {kSmallPhoto, kLargePhoto}) {
    SCOPED_TRACE(file);
    v1::PredictRequest request = PredictOf(Sample(file));
    request.set_top_k(22);
    v1::PredictResponse a, b;
    grpc::ClientContext ca, cb;
    ASSERT_TRUE(optimising_stub->Predict(&ca, request, &a).ok());
    ASSERT_TRUE(plain_stub->Predict(&cb, request, &b).ok());
    ASSERT_EQ(a.predictions_size(), 22);
    ASSERT_EQ(b.predictions_size(), 22);
    for (int k = 0; k < 22; ++k) {
      EXPECT_EQ(a.predictions(k).class_index(), b.predictions(k).class_index()) << k;
      EXPECT_FLOAT_EQ(a.predictions(k).probability(), b.predictions(k).probability()) << k;
    }
  }

  auto agreeing = StartServing({"--model=" + *packages_ + "/repo/tiny/2", "--device=cpu"});
  ASSERT_NE(agreeing, nullptr);
  EXPECT_THAT(agreeing->Log(),
              HasSubstr("model tiny version 2 serving (startup): frozen+optimized"));
}

}  // namespace
}  // namespace cropshield
