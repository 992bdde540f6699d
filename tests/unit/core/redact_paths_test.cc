#include "gtest/gtest.h"
#include "server/core/admin_auth.h"

namespace cropshield::core {
namespace {

TEST(RedactPathsTest, ReplacesWordsWithSlashesAndKeepsTheRest) {
  EXPECT_EQ(RedactPaths("cannot open /models/repo/cropshield/2/model.pt: No such file"),
            "cannot open <path> No such file");
  EXPECT_EQ(RedactPaths("weights hash mismatch in ./2/weights.bin (expected ab12)"),
            "weights hash mismatch in <path> (expected ab12)");
  EXPECT_EQ(RedactPaths("version 3 is not loadable"), "version 3 is not loadable");
  EXPECT_EQ(RedactPaths("  two\tspaces  /x  "), "  two\tspaces  <path>  ");
  EXPECT_EQ(RedactPaths(""), "");
}

}  // namespace
}  // namespace cropshield::core
