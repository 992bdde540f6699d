// The health service on a real gRPC server on a loopback port: Check and Watch from the first call
// (NOT_SERVING), status changes, unknown services, and Shutdown ending Watch streams.
#include "server/grpc_api/health_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace cropshield::grpc_api {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr char kService[] = "cropshield.v1.CropShieldService";

class HealthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    health_ = std::make_unique<HealthService>(std::vector<std::string>{kService});
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(health_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = Health::NewStub(
        grpc::CreateChannel(LoopbackTarget(port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    health_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_->Wait();
  }
  static std::string LoopbackTarget(int port) { return "127.0.0.1:" + std::to_string(port); }

  grpc::Status Check(const std::string& service, HealthCheckResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    HealthCheckRequest request;
    request.set_service(service);
    return stub_->Check(&context, request, response);
  }

  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(HealthServiceTest, CheckIsNotServingUntilSetServing) {
  for (const std::string service : {"", kService}) {
    HealthCheckResponse response;
    ASSERT_TRUE(Check(service, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING) << service;
  }
  health_->SetServing(true);
  for (const std::string service : {"", kService}) {
    HealthCheckResponse response;
    ASSERT_TRUE(Check(service, &response).ok());
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVING) << service;
  }
  health_->SetServing(false);
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, CheckOfAnUnknownServiceIsNotFound) {
  HealthCheckResponse response;
  grpc::Status status = Check("other.Service", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("other.Service"), std::string::npos);
}

TEST_F(HealthServiceTest, WatchSendsEachChangeOnceAndEndsAtShutdown) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  HealthCheckRequest request;
  request.set_service(kService);
  auto reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  health_->SetServing(false);  // no change: nothing sent
  health_->SetServing(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  health_->SetServing(true);
  health_->SetServing(false);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  health_->SetServing(true);
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  const auto start = std::chrono::steady_clock::now();
  health_->Shutdown();
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // After Shutdown the status stays NOT_SERVING.
  health_->SetServing(true);
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
}

TEST_F(HealthServiceTest, WatchOfAnUnknownServiceSaysServiceUnknown) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  HealthCheckRequest request;
  request.set_service("other.Service");
  auto reader = stub_->Watch(&context, request);
  HealthCheckResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
  context.TryCancel();
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// Many watchers coming and going while the status flips: every stream ends cleanly at shutdown.
TEST_F(HealthServiceTest, ConcurrentWatchersAndStatusChanges) {
  std::vector<std::thread> watchers;
  for (int w = 0; w < 8; ++w) {
    watchers.emplace_back([this, w] {
      for (int round = 0; round < 5; ++round) {
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
        auto reader = stub_->Watch(&context, HealthCheckRequest());
        HealthCheckResponse response;
        EXPECT_TRUE(reader->Read(&response)) << w;
        EXPECT_TRUE(reader->Read(&response)) << w;  // the flipper below keeps changing it
        context.TryCancel();
        while (reader->Read(&response)) {
        }
        reader->Finish();
      }
    });
  }
  std::atomic<bool> stop{false};
  std::thread flipper([this, &stop] {
    for (bool serving = true; !stop.load(); serving = !serving) {
      health_->SetServing(serving);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  for (std::thread& t : watchers) t.join();
  stop = true;
  flipper.join();
}

}  // namespace
}  // namespace cropshield::grpc_api
