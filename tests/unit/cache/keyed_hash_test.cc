#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "server/cache/sharded_lru_cache.h"

namespace cropshield::cache {
namespace {

TEST(KeyedHashBytes128Test, StableWithinTheProcessAndUnlikeTheUnkeyedHash) {
  EXPECT_EQ(KeyedHashBytes128("leaf photo"), KeyedHashBytes128("leaf photo"));
  EXPECT_NE(KeyedHashBytes128("leaf photo"), KeyedHashBytes128("leaf photp"));
  EXPECT_NE(KeyedHashBytes128("leaf photo"), HashBytes128("leaf photo"));
  EXPECT_NE(KeyedHashBytes128(""), HashBytes128(""));
}

// The secret is drawn per process: a child process hashes the same bytes differently.
TEST(KeyedHashBytes128Test, AnotherProcessHasAnotherSecret) {
  const auto mine = KeyedHashBytes128("leaf photo");
  const char* child = std::getenv("KEYED_HASH_CHILD");
  if (child != nullptr) {
    std::printf("%016llx%016llx\n", static_cast<unsigned long long>(mine.first),
                static_cast<unsigned long long>(mine.second));
    return;
  }
  char self[4096] = {};
  ASSERT_GT(readlink("/proc/self/exe", self, sizeof(self) - 1), 0);
  const std::string command =
      std::string("KEYED_HASH_CHILD=1 ") + self +
      " --gtest_filter=KeyedHashBytes128Test."
      "AnotherProcessHasAnotherSecret 2>/dev/null | grep -E '^[0-9a-f]{32}$'";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char line[64] = {};
  ASSERT_NE(fgets(line, sizeof(line), pipe), nullptr);
  pclose(pipe);
  char own[40];
  std::snprintf(own, sizeof(own), "%016llx%016llx", static_cast<unsigned long long>(mine.first),
                static_cast<unsigned long long>(mine.second));
  EXPECT_NE(std::string(line, 32), std::string(own));
}

}  // namespace
}  // namespace cropshield::cache
