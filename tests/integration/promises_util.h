// Helpers of the promise tests (promises_test.cc, cache_admin_test.cc, gpu_promises_test.cc):
// servers started and waited for, single calls with deadlines and an optional admin token, the
// value of one labelled /metrics series, and the small TorchScript packages of
// tests/testing/make_test_packages.py.
#ifndef CROPSHIELD_TESTS_INTEGRATION_PROMISES_UTIL_H_
#define CROPSHIELD_TESTS_INTEGRATION_PROMISES_UTIL_H_

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield::testing {

// A server started with `args` and SERVING; nullptr (with a test failure) otherwise.
inline std::unique_ptr<ServerProcess> StartServing(const std::vector<std::string>& args) {
  auto server = ServerProcess::Start(kServer, args);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  absl::Status serving = (*server)->WaitServing(std::chrono::seconds(120));
  EXPECT_TRUE(serving.ok()) << serving << "\n" << (*server)->Log();
  if (!serving.ok()) return nullptr;
  return *std::move(server);
}

// The exit code of a server that is expected to stop by itself (a refused start-up); -1 if it
// did not exit within a minute.
inline int ExitCodeOfFailedStart(const std::vector<std::string>& args, std::string* log) {
  auto server = ServerProcess::Start(kServer, args);
  if (!server.ok()) {  // exited before it logged a port: the reason is in the message
    *log = std::string(server.status().message());
    return 1;
  }
  absl::StatusOr<int> exit_code = (*server)->WaitExit(std::chrono::seconds(60));
  *log = (*server)->Log();
  return exit_code.ok() ? *exit_code : -1;
}

inline std::string Sample(const std::string& file) { return ReadFileOrDie(kSamples + "/" + file); }

inline grpc::Status CallPredict(v1::CropShieldService::Stub* stub, const std::string& image,
                                v1::PredictResponse* response,
                                std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  v1::PredictRequest request;
  request.mutable_image()->set_data(image);
  return stub->Predict(&context, request, response);
}

inline grpc::Status CallExplain(v1::CropShieldService::Stub* stub, v1::ExplainRequest request,
                                v1::ExplainResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return stub->Explain(&context, request, response);
}

inline v1::ExplainRequest ExplainOf(const std::string& image, int class_index = -1) {
  v1::ExplainRequest request;
  request.mutable_image()->set_data(image);
  if (class_index >= 0) request.set_class_index(class_index);
  return request;
}

inline grpc::Status CallClearCache(v1::CropShieldService::Stub* stub,
                                   const v1::ClearCacheRequest& request, const std::string& token,
                                   v1::ClearCacheResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  return stub->ClearCache(&context, request, response);
}

inline v1::StatsResponse CallStats(v1::CropShieldService::Stub* stub) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::StatsResponse stats;
  grpc::Status status = stub->Stats(&context, v1::StatsRequest(), &stats);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return stats;
}

// The value of `series` (name and labels exactly as exposed, e.g.
// `cropshield_batch_size_count{batcher="predict"}`) in a /metrics text; -1 when absent.
inline double MetricSeries(const std::string& text, const std::string& series) {
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::strtod(line.c_str() + series.size(), nullptr);
  }
  return -1;
}

// A file holding `token` (for --admin_token_file), unique to this process.
inline std::string WriteTokenFile(const std::string& name, const std::string& token) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name, "_", getpid());
  std::ofstream(path) << token << "\n";
  return path;
}

// tests/testing/make_test_packages.py's packages in a fresh directory (removed by the caller).
// rm -rf of a directory this test made (std::filesystem::remove_all crashed in a binary linking the
// pip CUDA libtorch on the H200 host).
inline void RemoveTree(const std::string& dir) {
  const int rc = std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
  EXPECT_EQ(rc, 0) << "rm -rf " << dir;
}

inline std::string MakeTestPackages(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name, "_", getpid());
  RemoveTree(dir);
  const std::string command = absl::StrCat(CROPSHIELD_PYTHON, " ", kSourceDir,
                                           "/tests/testing/make_test_packages.py ", dir);
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << command;
  return dir;
}

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_INTEGRATION_PROMISES_UTIL_H_
