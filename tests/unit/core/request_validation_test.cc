// Torch-free request checks of issue #20: request_id, Explain output sizing and budgets.
#include "server/core/request_validation.h"

#include <string>

#include "gtest/gtest.h"
#include "server/explain/render.h"

namespace cropshield::core {
namespace {

TEST(CheckRequestIdTest, AcceptsUpTo128PrintableCharacters) {
  EXPECT_TRUE(CheckRequestId("").ok());
  EXPECT_TRUE(CheckRequestId("req-42 /a:b~").ok());
  EXPECT_TRUE(CheckRequestId(std::string(128, 'x')).ok());
  EXPECT_EQ(CheckRequestId(std::string(129, 'x')).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckRequestIdTest, RefusesControlAndNonAsciiBytesNamingTheByte) {
  for (const std::string id :
       {std::string("a\nI SERVING"), std::string("a\rb"), std::string("tab\t"),
        std::string("del\x7f"), std::string("caf\xc3\xa9"), std::string("nul\0x", 5)}) {
    absl::Status status = CheckRequestId(id);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_NE(std::string(status.message()).find("printable ASCII"), std::string::npos);
  }
}

TEST(ExplainOutputSizeTest, SmallPhotosKeepTheirSize) {
  const OutputSize size = ExplainOutputSize(1600, 1200, 2048 * 2048);
  EXPECT_EQ(size.width, 1600);
  EXPECT_EQ(size.height, 1200);
  const OutputSize exact = ExplainOutputSize(2048, 2048, 2048 * 2048);
  EXPECT_EQ(exact.width, 2048);
  EXPECT_EQ(exact.height, 2048);
}

TEST(ExplainOutputSizeTest, LargePhotosAreScaledOneFactorWithinTheCap) {
  const int64_t cap = 2048 * 2048;
  const OutputSize size = ExplainOutputSize(6000, 6666, cap);
  EXPECT_LE(size.pixels(), cap);
  EXPECT_GE(size.pixels(), cap * 99 / 100);
  // One factor: the aspect ratio is kept within a pixel's rounding.
  EXPECT_NEAR(static_cast<double>(size.width) / size.height, 6000.0 / 6666.0, 1.0 / size.height);
  const OutputSize wide = ExplainOutputSize(65501, 600, cap);
  EXPECT_LE(wide.pixels(), cap);
  EXPECT_EQ(wide.width, 21398);  // 65501 * sqrt(cap / (65501 * 600)), rounded down
  EXPECT_EQ(wide.height, 196);
}

TEST(ExplainOutputSizeTest, ExtremeStripsStayWithinTheCap) {
  const OutputSize strip = ExplainOutputSize(40'000'000, 1, 1000);
  EXPECT_EQ(strip.height, 1);
  EXPECT_EQ(strip.width, 1000);
  const OutputSize column = ExplainOutputSize(1, 40'000'000, 1000);
  EXPECT_EQ(column.width, 1);
  EXPECT_EQ(column.height, 1000);
}

ExplainPlan PlanWithOverlay(cropshield::v1::ImageEncoding encoding) {
  ExplainPlan plan;
  plan.outputs.set_overlay(true);
  plan.outputs.set_overlay_encoding(encoding);
  return plan;
}

std::string GreyPng(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3, 128);
  absl::StatusOr<std::string> png = explain::EncodePng(rgb, width, height, 3);
  EXPECT_TRUE(png.ok()) << png.status();
  return png.ok() ? *png : "";
}

TEST(PlanExplainOutputsTest, JpegOverlayOverJpegsLimitIsRefusedBeforeWork) {
  const std::string wide = GreyPng(65501, 4);
  ImageLimits unbounded;
  unbounded.explain_max_output_pixels = int64_t{1} << 40;
  absl::StatusOr<OutputSize> jpeg =
      PlanExplainOutputs(PlanWithOverlay(cropshield::v1::IMAGE_ENCODING_JPEG), wide, unbounded);
  EXPECT_EQ(jpeg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(jpeg.status().message()).find("65500"), std::string::npos);
  // A PNG overlay has no such limit.
  absl::StatusOr<OutputSize> png =
      PlanExplainOutputs(PlanWithOverlay(cropshield::v1::IMAGE_ENCODING_PNG), wide, unbounded);
  EXPECT_TRUE(png.ok()) << png.status();
  // Under the default cap a photo that wide but taller is scaled below JPEG's limit.
  absl::StatusOr<OutputSize> capped = PlanExplainOutputs(
      PlanWithOverlay(cropshield::v1::IMAGE_ENCODING_JPEG), GreyPng(65501, 100), ImageLimits());
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_EQ(capped->width, 52414);  // 65501 * sqrt(2048^2 / 6,550,100), rounded down
  EXPECT_EQ(capped->height, 80);
}

TEST(PlanExplainOutputsTest, HeaderOverThePixelLimitOrCorruptIsRefused) {
  ImageLimits limits;
  limits.max_image_pixels = 1000;
  absl::StatusOr<OutputSize> big = PlanExplainOutputs(ExplainPlan(), GreyPng(100, 11), limits);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(big.status().message()).find("--max_image_pixels"), std::string::npos);
  EXPECT_EQ(PlanExplainOutputs(ExplainPlan(), "not an image", limits).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EstimateExplainBytesTest, GrowsWithOutputsAndPixels) {
  const OutputSize size{1000, 1000};
  ExplainPlan none;
  const int64_t fixed = EstimateExplainBytes(none, size);
  EXPECT_EQ(fixed, 1 << 20);  // no photo-sized output: independent of the photo
  ExplainPlan all = PlanWithOverlay(cropshield::v1::IMAGE_ENCODING_PNG);
  all.outputs.set_image_map(true);
  all.outputs.set_heatmap_png(true);
  // Every output byte counted three times, plus render buffers: 48 bytes per pixel.
  EXPECT_EQ(EstimateExplainBytes(all, size), fixed + 48 * 1'000'000);
  EXPECT_EQ(EstimateExplainBytes(all, OutputSize{2000, 1000}), fixed + 48 * 2'000'000);
}

}  // namespace
}  // namespace cropshield::core
