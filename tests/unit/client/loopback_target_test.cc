// The client library's refusal to send the admin token in plaintext off the host.
#include "cropshield/client/client.h"
#include "gtest/gtest.h"

namespace cropshield::client {
namespace {

TEST(IsLoopbackTargetTest, HostLocalTargets) {
  for (const char* target :
       {"localhost:50051", "127.0.0.1:50051", "127.1.2.3:1", "[::1]:50051", "dns:///localhost:1",
        "dns:localhost:1", "dns://8.8.8.8/127.0.0.1:5", "ipv4:127.0.0.1:1,127.0.0.2:1",
        "ipv6:[::1]:50051", "unix:/tmp/cropshield.sock", "unix-abstract:cropshield"}) {
    EXPECT_TRUE(IsLoopbackTarget(target)) << target;
  }
}

TEST(IsLoopbackTargetTest, EverythingElse) {
  for (const char* target :
       {"cropshield:50051", "10.0.0.1:50051", "dns:///cropshield.prod.svc:50051",
        "ipv4:127.0.0.1:1,10.0.0.2:1", "[2001:db8::1]:1", "127.0.0.1.evil.example:1",
        "localhost.evil.example:1", "128.0.0.1:1", "127.0.0.256:1", ""}) {
    EXPECT_FALSE(IsLoopbackTarget(target)) << target;
  }
}

TEST(ClientCreateTest, RefusesATokenInPlaintextToARemoteTargetUnlessAllowed) {
  Options options;
  options.target = "cropshield.example:50051";
  options.admin_token = "s3cret";
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(client.status().message()).find("s3cret"), std::string::npos);
  options.allow_plaintext_token = true;
  EXPECT_TRUE(Client::Create(options).ok());
  options.allow_plaintext_token = false;
  options.target = "127.0.0.1:50051";
  EXPECT_TRUE(Client::Create(options).ok());
  options.target = "cropshield.example:50051";
  options.tls.enabled = true;
  EXPECT_TRUE(Client::Create(options).ok());
  options.tls.enabled = false;
  options.admin_token.clear();
  EXPECT_TRUE(Client::Create(options).ok()) << "no token, nothing to protect";
}

}  // namespace
}  // namespace cropshield::client
