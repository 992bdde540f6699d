#include "server/image/resize.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace cropshield::image {
namespace {

TEST(ResizeRgbTest, AreaAveragesWhenShrinkingByAnIntegerFactor) {
  // 4x2 -> 2x1: each output pixel is the mean of a 2x2 block.
  const std::vector<uint8_t> rgb = {0,  0,  0,  100, 100, 100, 10, 20, 30, 50, 60, 70,
                                    20, 20, 20, 40,  40,  40,  30, 40, 50, 70, 80, 90};
  absl::StatusOr<std::vector<uint8_t>> out = ResizeRgb(rgb, 4, 2, 2, 1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (std::vector<uint8_t>{40, 40, 40, 40, 50, 60}));
}

TEST(ResizeRgbTest, SameSizeIsACopy) {
  const std::vector<uint8_t> rgb = {1, 2, 3, 4, 5, 6};
  absl::StatusOr<std::vector<uint8_t>> out = ResizeRgb(rgb, 2, 1, 2, 1);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, rgb);
}

TEST(ResizeRgbTest, BadArgumentsAreInvalid) {
  const std::vector<uint8_t> rgb(12, 0);
  EXPECT_EQ(ResizeRgb(rgb, 2, 2, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResizeRgb(rgb, 3, 2, 1, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cropshield::image
