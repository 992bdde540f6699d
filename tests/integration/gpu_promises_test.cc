// GPU promises of the real cropshield-server (CTest label "gpu"; every test is skipped where this
// build of libtorch sees no CUDA device, and never skipped where it does):
//   --precision fp16 / bf16 serve on the GPU after the start-up check against fp32, and a model
//   whose top-1 class changes in reduced precision is refused at start;
//   --cuda_graphs (on by default) replays Predict from CUDA graphs, and falls back to eager
//   forwards, with a log line, for a model whose forward cannot be captured.
// The CPU side of the precision flag is in promises_test.cc.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/model.h"
#include "tests/integration/promises_util.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::CallPredict;
using ::cropshield::testing::CallStats;
using ::cropshield::testing::ExitCodeOfFailedStart;
using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kSamples;
using ::cropshield::testing::MakeStub;
using ::cropshield::testing::ReadFileOrDie;
using ::cropshield::testing::StartServing;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

class GpuTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!engine::CudaAvailable()) return;
    packages_ = new std::string(testing::MakeTestPackages("cropshield_gpu_packages"));
  }
  static void TearDownTestSuite() {
    if (packages_ == nullptr) return;
    // Not std::filesystem: in this binary, which links the pip CUDA libtorch, remove_all died with
    // SIGSEGV on the H200 host (every test had passed).
    testing::RemoveTree(*packages_);
    delete packages_;
    packages_ = nullptr;
  }
  void SetUp() override {
    if (!engine::CudaAvailable()) {
      GTEST_SKIP() << "no CUDA device for this build of libtorch: GPU promise not checked here";
    }
  }

  // The demo model's top-1 label for each sample photo from a server, and its lead over the
  // second class.
  struct Answer {
    std::string label;
    float lead = 0;
  };
  static std::map<std::string, Answer> Top1(const testing::ServerProcess& server) {
    auto stub = MakeStub(server.address());
    std::map<std::string, Answer> top1;
    for (const auto& [file, label] : testing::SampleLabels(kSamples)) {
      v1::PredictResponse response;
      grpc::Status status =
          CallPredict(stub.get(), ReadFileOrDie(kSamples + "/" + file), &response);
      EXPECT_TRUE(status.ok()) << file << ": " << status.error_message();
      if (!status.ok()) continue;
      top1[file] = {response.predictions(0).label(),
                    response.predictions(0).probability() - response.predictions(1).probability()};
    }
    return top1;
  }

  static std::string* packages_;
};
std::string* GpuTest::packages_ = nullptr;

// fp16 and bf16 pass the start-up check on the demo model and serve on the GPU: Stats and the log
// name the device and precision, and every sample that fp32 classifies with a clear lead (over 5
// points) gets the same class.
TEST_F(GpuTest, ReducedPrecisionServesOnTheGpuWithTheFp32Answers) {
  auto fp32 = StartServing({"--model=" + kDemoRepository, "--device=cuda"});
  ASSERT_NE(fp32, nullptr);
  const std::map<std::string, Answer> expected = Top1(*fp32);
  ASSERT_EQ(expected.size(), testing::SampleLabels(kSamples).size());
  int clear = 0;
  for (const auto& [file, answer] : expected) clear += answer.lead > 0.05f;
  ASSERT_GE(clear, 5) << "the demo model should classify most samples clearly";
  for (const char* precision : {"fp16", "bf16"}) {
    SCOPED_TRACE(precision);
    auto server = StartServing(
        {"--model=" + kDemoRepository, "--device=cuda", absl::StrCat("--precision=", precision)});
    ASSERT_NE(server, nullptr);
    EXPECT_THAT(server->Log(),
                HasSubstr(absl::StrCat("device=cuda:0 precision=", precision, " classes=22")));
    auto stub = MakeStub(server->address());
    const v1::StatsResponse stats = CallStats(stub.get());
    ASSERT_EQ(stats.models_size(), 1);
    EXPECT_EQ(stats.models(0).device(), "cuda:0");
    EXPECT_EQ(stats.models(0).precision(), precision);
    const std::map<std::string, Answer> reduced = Top1(*server);
    for (const auto& [file, answer] : expected) {
      if (answer.lead <= 0.05f) continue;
      ASSERT_EQ(reduced.count(file), 1u) << file;
      EXPECT_EQ(reduced.at(file).label, answer.label) << file;
    }
  }
}

// A model whose top-1 class changes in fp16 / bf16 (make_test_packages.py: two logits 0.2 apart
// around 1000) is refused at start rather than served with other answers.
TEST_F(GpuTest, ReducedPrecisionThatChangesTheTop1IsRefusedAtStart) {
  for (const char* precision : {"fp16", "bf16"}) {
    SCOPED_TRACE(precision);
    std::string log;
    EXPECT_EQ(ExitCodeOfFailedStart({"--model=" + *packages_ + "/reduced_precision_flip",
                                     "--device=cuda", absl::StrCat("--precision=", precision)},
                                    &log),
              1);
    EXPECT_THAT(
        log, HasSubstr(absl::StrCat(precision, " changes the top-1 class on the warm-up inputs")));
  }
  // In fp32 the same package serves.
  auto fp32 = StartServing({"--model=" + *packages_ + "/reduced_precision_flip", "--device=cuda"});
  EXPECT_NE(fp32, nullptr);
}

// CUDA graphs: recorded for every warmed batch size of a capturable model; a model whose forward
// reads a device value on the host cannot be captured, so the server says so and serves it with
// eager forwards, on the GPU, with the answers of the same model on the CPU.
TEST_F(GpuTest, CudaGraphsAreUsedAndFallBackToEagerWhenCaptureFails) {
  auto graphed = StartServing({"--model=" + kDemoRepository, "--device=cuda"});
  ASSERT_NE(graphed, nullptr);
  EXPECT_THAT(graphed->Log(), ContainsRegex("serving \\(startup\\): .*; [1-9][0-9]* CUDA graphs"));

  const std::string unsafe = *packages_ + "/graph_unsafe";
  auto eager = StartServing({"--model=" + unsafe, "--device=cuda"});
  ASSERT_NE(eager, nullptr);
  EXPECT_THAT(eager->Log(), HasSubstr("; CUDA graphs not used: "));
  EXPECT_THAT(eager->Log(), ::testing::Not(ContainsRegex("[0-9]+ CUDA graphs")));
  auto stub = MakeStub(eager->address());
  EXPECT_EQ(CallStats(stub.get()).models(0).device(), "cuda:0");

  auto cpu = StartServing({"--model=" + unsafe, "--device=cpu"});
  ASSERT_NE(cpu, nullptr);
  auto cpu_stub = MakeStub(cpu->address());
  for (const auto& [file, label] : testing::SampleLabels(kSamples)) {
    const std::string photo = ReadFileOrDie(kSamples + "/" + file);
    v1::PredictResponse on_gpu, on_cpu;
    ASSERT_TRUE(CallPredict(stub.get(), photo, &on_gpu).ok()) << file;
    ASSERT_TRUE(CallPredict(cpu_stub.get(), photo, &on_cpu).ok()) << file;
    ASSERT_EQ(on_gpu.predictions_size(), 3);
    EXPECT_EQ(on_gpu.predictions(0).class_index(), on_cpu.predictions(0).class_index()) << file;
    EXPECT_NEAR(on_gpu.predictions(0).probability(), on_cpu.predictions(0).probability(), 1e-3);
  }
}

}  // namespace
}  // namespace cropshield
