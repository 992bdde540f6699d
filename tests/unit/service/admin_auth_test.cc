#include "server/service/admin_auth.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace cropshield::service {
namespace {

AdminPolicy TokenPolicy(std::string token) {
  AdminPolicy policy;
  policy.token = std::move(token);
  return policy;
}

TEST(AdminAuthTest, WithoutTokenOnlyLoopbackIsAdmitted) {
  const AdminPolicy open;
  EXPECT_TRUE(AuthorizeAdmin(open, "", "ipv4:127.0.0.1:40000").ok());
  EXPECT_TRUE(AuthorizeAdmin(open, "", "ipv6:[::1]:40000").ok());
  EXPECT_TRUE(AuthorizeAdmin(open, "", "unix:/tmp/socket").ok());
  EXPECT_EQ(AuthorizeAdmin(open, "", "ipv4:10.1.2.3:40000").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeAdmin(open, "Bearer anything", "ipv6:[2001:db8::1]:40000").code(),
            absl::StatusCode::kPermissionDenied);
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
}  // namespace cropshield::service
