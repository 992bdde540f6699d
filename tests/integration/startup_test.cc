// Start-up of the real server binary (issue #17 item 4): a gRPC or metrics port already in use
// refuses the start (exit 1, the flag and address named) instead of serving beside the other
// process; the load logs each step and the warm-up's progress before SERVING; /metrics carries
// cropshield_build_info.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::CommandResult;
using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kServer;
using ::cropshield::testing::RunCommand;
using ::cropshield::testing::ServerProcess;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> BaseArgs() {
  return {"--model=" + kDemoRepository, "--device=cpu", "--workers=1", "--threads=1"};
}

std::unique_ptr<ServerProcess> StartServing(std::vector<std::string> args) {
  auto server = ServerProcess::Start(kServer, std::move(args));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  const absl::Status serving = (*server)->WaitServing(std::chrono::seconds(120));
  EXPECT_TRUE(serving.ok()) << serving << "\n" << (*server)->Log();
  if (!serving.ok()) return nullptr;
  return *std::move(server);
}

// Runs a server that should refuse to start; a server that starts serving instead is stopped by
// `timeout` (exit 124).
CommandResult RunExpectingRefusal(const std::vector<std::string>& flags) {
  std::vector<std::string> argv = BaseArgs();
  argv.insert(argv.end(), flags.begin(), flags.end());
  return RunCommand(absl::StrCat("timeout 45 '", kServer, "' ", absl::StrJoin(argv, " ")),
                    /*merge_stderr=*/true);
}

int MetricsPort(const ServerProcess& server) {
  std::smatch match;
  const std::string log = server.Log();
  if (!std::regex_search(log, match, std::regex("metrics listening on port ([0-9]+)"))) return 0;
  return std::stoi(match[1]);
}

// Before: gRPC's SO_REUSEPORT let a second server bind the same port, log SERVING and take part
// of the first one's connections; a metrics port in use only logged "metrics endpoint disabled".
TEST(StartupTest, PortsInUseRefuseTheStart) {
  auto first = StartServing(BaseArgs());
  ASSERT_NE(first, nullptr);
  const std::string grpc_address = absl::StrCat("127.0.0.1:", first->port());
  const int metrics_port = MetricsPort(*first);
  ASSERT_GT(metrics_port, 0) << first->Log();
  const std::string metrics_address = absl::StrCat("127.0.0.1:", metrics_port);

  const CommandResult grpc_taken =
      RunExpectingRefusal({"--address=" + grpc_address, "--metrics_address=", "--http_address="});
  EXPECT_EQ(grpc_taken.exit_code, 1) << grpc_taken.output;
  EXPECT_THAT(grpc_taken.output, HasSubstr("cannot start"));
  EXPECT_THAT(grpc_taken.output, HasSubstr("--address=" + grpc_address));
  EXPECT_THAT(grpc_taken.output, Not(HasSubstr("SERVING")));

  const CommandResult metrics_taken = RunExpectingRefusal(
      {"--address=127.0.0.1:0", "--metrics_address=" + metrics_address, "--http_address="});
  EXPECT_EQ(metrics_taken.exit_code, 1) << metrics_taken.output;
  EXPECT_THAT(metrics_taken.output, HasSubstr("--metrics_address=" + metrics_address));
  EXPECT_THAT(metrics_taken.output, Not(HasSubstr("SERVING")));

  // Empty still disables the endpoint, and the first server still answers.
  auto without_metrics = StartServing(
      {"--model=" + kDemoRepository, "--device=cpu", "--workers=1", "--metrics_address="});
  ASSERT_NE(without_metrics, nullptr);
  EXPECT_EQ(MetricsPort(*without_metrics), 0);
  EXPECT_TRUE(first->Health().ok());
}

TEST(StartupTest, MetricsCarryBuildInfo) {
  auto server = StartServing(BaseArgs());
  ASSERT_NE(server, nullptr);
  const std::string text = server->MetricsText();
  EXPECT_THAT(text, HasSubstr("# TYPE cropshield_build_info gauge"));
  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      text, match,
      std::regex("cropshield_build_info\\{device=\"cpu\",revision=\"([0-9a-f]+|unknown)\","
                 "torch_version=\"[0-9]+\\.[0-9]+[^\"]*\",version=\"[0-9]+\\.[0-9]+\\.[0-9]+\"\\} "
                 "1\n")))
      << text;
}

// Seconds a warm-up took, from "model ... : warm-up (N forward passes ...)" / "warm-up done in".
double WarmupSeconds(const std::string& log) {
  std::smatch match;
  if (!std::regex_search(log, match, std::regex(": warm-up done in ([0-9.]+) s"))) return -1;
  return std::stod(match[1]);
}

// Before: nothing between "loading model" and SERVING however long the warm-up.
TEST(StartupTest, LoadLogsStepsAndWarmupProgressBeforeServing) {
  // Measure this machine's forward pass, then ask for a warm-up of about 7 s: progress lines come
  // at most every 5 s, so at least one must appear.
  constexpr int kProbeIterations = 40;
  auto probe =
      StartServing({"--model=" + kDemoRepository, "--device=cpu", "--workers=1", "--threads=1",
                    absl::StrCat("--warmup_iterations=", kProbeIterations)});
  ASSERT_NE(probe, nullptr);
  const std::string probe_log = probe->Log();
  const size_t serving_at = probe_log.find("SERVING model=");
  ASSERT_NE(serving_at, std::string::npos) << probe_log;
  const std::string before_serving = probe_log.substr(0, serving_at);
  for (const char* step : {"load and check", "build the serving module",
                           "verify the serving module against the original", "warm-up"}) {
    EXPECT_THAT(before_serving, HasSubstr(absl::StrCat("version 1: ", step)));
    EXPECT_THAT(before_serving, HasSubstr(absl::StrCat("version 1: ", step, " done in ")));
  }
  const double probe_seconds = WarmupSeconds(probe_log);
  ASSERT_GT(probe_seconds, 0) << probe_log;
  probe.reset();

  // The probe's timing is only a guess on a shared machine: a warm-up that ended before 6 s proves
  // nothing, so retry it longer.
  double per_pass = std::max(probe_seconds / (kProbeIterations - 2), 1e-4);
  for (int attempt = 0; attempt < 4; ++attempt) {
    const int iterations = static_cast<int>(std::min(7.0 / per_pass, 2e6));
    auto server = StartServing({"--model=" + kDemoRepository, "--device=cpu", "--workers=1",
                                "--threads=1", absl::StrCat("--warmup_iterations=", iterations)});
    ASSERT_NE(server, nullptr);
    const std::string log = server->Log();
    const double seconds = WarmupSeconds(log);
    ASSERT_GT(seconds, 0) << log;
    if (seconds < 6) {
      per_pass = std::max(seconds / iterations, 1e-6) * 0.8;
      continue;
    }
    std::smatch match;
    const std::string head = log.substr(0, log.find("SERVING model="));
    ASSERT_TRUE(std::regex_search(
        head, match, std::regex("warm-up: ([0-9]+)/([0-9]+) forward passes \\([0-9]+%\\) after")))
        << "warm-up of " << seconds << " s logged no progress:\n"
        << log;
    // On CPU the verification's 2 passes count as warm-up ones.
    const int total = std::stoi(match[2]);
    EXPECT_GE(total, iterations - 2);
    EXPECT_LE(total, iterations);
    EXPECT_LT(std::stoi(match[1]), total);
    return;
  }
  FAIL() << "no warm-up lasted 6 s";
}

}  // namespace
}  // namespace cropshield
