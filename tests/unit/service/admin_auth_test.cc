#include "server/service/admin_auth.h"

#include "gtest/gtest.h"

namespace cropshield::service {
namespace {

TEST(AdminAuthTest, WithoutTokenOnlyLoopbackIsAdmitted) {
  EXPECT_TRUE(AuthorizeAdmin("", "", "ipv4:127.0.0.1:40000").ok());
  EXPECT_TRUE(AuthorizeAdmin("", "", "ipv6:[::1]:40000").ok());
  EXPECT_TRUE(AuthorizeAdmin("", "", "unix:/tmp/socket").ok());
  EXPECT_EQ(AuthorizeAdmin("", "", "ipv4:10.1.2.3:40000").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(AuthorizeAdmin("", "Bearer anything", "ipv6:[2001:db8::1]:40000").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AdminAuthTest, WithTokenTheBearerMustMatchFromAnyPeer) {
  EXPECT_TRUE(AuthorizeAdmin("t0ken", "Bearer t0ken", "ipv4:10.1.2.3:40000").ok());
  for (const char* header :
       {"", "t0ken", "Bearer t0ke", "Bearer t0ken2", "bearer t0ken", "Basic t0ken"}) {
    absl::Status status = AuthorizeAdmin("t0ken", header, "ipv4:127.0.0.1:1");
    EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied) << header;
    EXPECT_EQ(std::string(status.message()).find("t0ken"), std::string::npos);
  }
}

}  // namespace
}  // namespace cropshield::service
