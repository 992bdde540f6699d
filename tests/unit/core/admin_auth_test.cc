#include "server/core/admin_auth.h"

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cropshield::core {
namespace {

AdminPolicy TokenPolicy(std::string token) {
  AdminPolicy policy;
  policy.token = std::move(token);
  return policy;
}

TEST(AdminAuthTest, WithNothingConfiguredEveryoneIsRefusedLoopbackIncluded) {
  const AdminPolicy none;
  EXPECT_FALSE(AdminEnabled(none));
  EXPECT_EQ(DescribeAdminPolicy(none), "disabled");
  for (const char* peer :
       {"ipv4:127.0.0.1:40000", "ipv6:[::1]:40000", "unix:/tmp/socket", "ipv4:10.1.2.3:40000"}) {
    absl::Status status = AuthorizeAdmin(none, "Bearer anything", peer);
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << peer;
    EXPECT_NE(std::string(status.message()).find("--admin_trust_loopback"), std::string::npos);
  }
}

TEST(AdminAuthTest, ExplicitLoopbackTrustAdmitsOnlyLoopback) {
  AdminPolicy loopback;
  loopback.trust_loopback = true;
  EXPECT_EQ(DescribeAdminPolicy(loopback), "loopback");
  EXPECT_TRUE(AuthorizeAdmin(loopback, "", "ipv4:127.0.0.1:40000").ok());
  EXPECT_TRUE(AuthorizeAdmin(loopback, "", "ipv6:[::1]:40000").ok());
  EXPECT_TRUE(AuthorizeAdmin(loopback, "", "unix:/tmp/socket").ok());
  EXPECT_EQ(AuthorizeAdmin(loopback, "", "ipv4:10.1.2.3:40000").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeAdmin(loopback, "Bearer anything", "ipv6:[2001:db8::1]:40000").code(),
            absl::StatusCode::kPermissionDenied);
  // With a token as well, remote callers still need it.
  loopback.token = "t0ken";
  EXPECT_EQ(DescribeAdminPolicy(loopback), "token+loopback");
  EXPECT_TRUE(AuthorizeAdmin(loopback, "", "ipv4:127.0.0.1:1").ok());
  EXPECT_TRUE(AuthorizeAdmin(loopback, "Bearer t0ken", "ipv4:10.1.2.3:1").ok());
  EXPECT_FALSE(AuthorizeAdmin(loopback, "", "ipv4:10.1.2.3:1").ok());
}

class ReadAdminTokenTest : public ::testing::Test {
 protected:
  std::string WriteTokenFile(const std::string& contents) {
    const std::string path = ::testing::TempDir() + "/admin_token_test";
    std::ofstream(path, std::ios::trunc) << contents;
    return path;
  }
};

TEST_F(ReadAdminTokenTest, NothingConfiguredIsNoToken) {
  absl::StatusOr<std::string> token = ReadAdminToken("", nullptr);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "");
}

TEST_F(ReadAdminTokenTest, FileWinsOverEnvironmentAndLosesTrailingWhitespace) {
  absl::StatusOr<std::string> token = ReadAdminToken(WriteTokenFile("s3cret \r\n"), "from-env");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "s3cret");
  token = ReadAdminToken("", "from-env\n");
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "from-env");
}

TEST_F(ReadAdminTokenTest, EmptyOrWhitespaceTokensAreRefused) {
  for (const char* contents : {"", "\n", "   \n", "\t \r\n"}) {
    absl::StatusOr<std::string> token = ReadAdminToken(WriteTokenFile(contents), "from-env");
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument) << "[" << contents << "]";
    token = ReadAdminToken("", contents);
    EXPECT_EQ(token.status().code(), absl::StatusCode::kInvalidArgument) << "[" << contents << "]";
  }
}

TEST_F(ReadAdminTokenTest, MissingFileIsNotFound) {
  EXPECT_EQ(ReadAdminToken("/nonexistent/admin_token", nullptr).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(AdminAuthTest, WithTokenTheBearerMustMatchFromAnyPeer) {
  const AdminPolicy policy = TokenPolicy("t0ken");
  EXPECT_TRUE(AuthorizeAdmin(policy, "Bearer t0ken", "ipv4:10.1.2.3:40000").ok());
  for (const char* header :
       {"", "t0ken", "Bearer t0ke", "Bearer t0ken2", "bearer t0ken", "Basic t0ken"}) {
    absl::Status status = AuthorizeAdmin(policy, header, "ipv4:127.0.0.1:1");
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << header;
    EXPECT_EQ(std::string(status.message()).find("t0ken"), std::string::npos);
  }
}

TEST(AdminAuthTest, AllowedClientCertificateIdentityIsAdmittedWithoutToken) {
  AdminPolicy policy = TokenPolicy("t0ken");
  policy.client_identities = {"deployer", "spiffe://prod/ns/ci/sa/deployer"};
  const std::vector<std::string> deployer = {"deployer"};
  const std::vector<std::string> by_san = {"some-cn", "spiffe://prod/ns/ci/sa/deployer"};
  const std::vector<std::string> stranger = {"intruder"};
  EXPECT_TRUE(AuthorizeAdmin(policy, "", "ipv4:10.1.2.3:1", deployer).ok());
  EXPECT_TRUE(AuthorizeAdmin(policy, "", "ipv4:10.1.2.3:1", by_san).ok());
  EXPECT_EQ(AuthorizeAdmin(policy, "", "ipv4:10.1.2.3:1", stranger).code(),
            absl::StatusCode::kPermissionDenied);
  // The token still works for a client whose certificate is not on the list.
  EXPECT_TRUE(AuthorizeAdmin(policy, "Bearer t0ken", "ipv4:10.1.2.3:1", stranger).ok());
}

TEST(AdminAuthTest, IdentitiesWithoutTokenDoNotFallBackToLoopback) {
  AdminPolicy policy;
  policy.client_identities = {"deployer"};
  absl::Status status = AuthorizeAdmin(policy, "Bearer x", "ipv4:127.0.0.1:1");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(std::string(status.message()).find("--admin_client_identities"), std::string::npos);
  const std::vector<std::string> deployer = {"deployer"};
  EXPECT_TRUE(AuthorizeAdmin(policy, "", "ipv4:127.0.0.1:1", deployer).ok());
}

}  // namespace
}  // namespace cropshield::core
