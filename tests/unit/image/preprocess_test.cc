#include "server/image/preprocess.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/image/decode.h"

namespace cropshield::image {
namespace {

constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

DecodedImage RandomImage(int width, int height, uint32_t seed) {
  DecodedImage image;
  image.format = ImageFormat::kPng;
  image.width = image.full_width = width;
  image.height = image.full_height = height;
  image.rgb.resize(static_cast<size_t>(width) * height * 3);
  std::mt19937 rng(seed);
  for (uint8_t& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xFF);
  return image;
}

// What the manual "ToTensor -> Normalize" of one pixel value gives.
float Normalised(uint8_t value, int channel) {
  return (static_cast<float>(value) / 255.0f - kMean[channel]) / kStd[channel];
}

std::vector<float> RunPreprocess(const DecodedImage& image, const PreprocessOptions& options,
                                 CropBox* box = nullptr) {
  std::vector<float> out(3 * options.input_size * options.input_size);
  const absl::Status status = Preprocess(image, options, absl::MakeSpan(out), box);
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

TEST(PreprocessTest, Square256IsAnExactCropOfPixels16To240) {
  const DecodedImage image = RandomImage(256, 256, 7);
  CropBox box;
  const std::vector<float> out = RunPreprocess(image, {}, &box);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 224; ++y) {
      for (int x = 0; x < 224; ++x) {
        const uint8_t v = image.rgb[((y + 16) * 256 + (x + 16)) * 3 + c];
        ASSERT_NEAR(out[(c * 224 + y) * 224 + x], Normalised(v, c), 1e-6)
            << "c=" << c << " y=" << y << " x=" << x;
      }
    }
  }
  EXPECT_DOUBLE_EQ(box.x, 16);
  EXPECT_DOUBLE_EQ(box.y, 16);
  EXPECT_DOUBLE_EQ(box.width, 224);
  EXPECT_DOUBLE_EQ(box.height, 224);
}

TEST(PreprocessTest, CropBoxFollowsTorchvisionGeometry) {
  struct Case {
    int w, h;
    double x, y, width, height;
  };
  const Case cases[] = {
      // 1600x1200 -> Resize 341x256; left = round(117 / 2) = 58 (half to even), top = 16.
      {1600, 1200, 58.0 * 1600 / 341, 16.0 * 1200 / 256, 224.0 * 1600 / 341, 224.0 * 1200 / 256},
      {1200, 1600, 16.0 * 1200 / 256, 58.0 * 1600 / 341, 224.0 * 1200 / 256, 224.0 * 1600 / 341},
      // 259x256 stays 259x256; left = round(35 / 2) = 18 (half to even).
      {259, 256, 18, 16, 224, 224},
      // 257x300 -> 256x298; left = round(16.0) = 16, top = round(37.0) = 37.
      {257, 300, 16.0 * 257 / 256, 37.0 * 300 / 298, 224.0 * 257 / 256, 224.0 * 300 / 298},
      // 640x480 -> 341x256 as well.
      {640, 480, 58.0 * 640 / 341, 16.0 * 480 / 256, 224.0 * 640 / 341, 224.0 * 480 / 256},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.w << "x" << c.h);
    absl::StatusOr<CropBox> box = ComputeCropBox(c.w, c.h, {});
    ASSERT_TRUE(box.ok()) << box.status();
    EXPECT_NEAR(box->x, c.x, 1e-9);
    EXPECT_NEAR(box->y, c.y, 1e-9);
    EXPECT_NEAR(box->width, c.width, 1e-9);
    EXPECT_NEAR(box->height, c.height, 1e-9);

    // Preprocess reports the same box, also from a DCT-downscaled image of that photo.
    DecodedImage image = RandomImage((c.w + 3) / 4, (c.h + 3) / 4, 1);
    image.full_width = c.w;
    image.full_height = c.h;
    image.scale_num = 1;
    image.scale_denom = 4;
    CropBox from_pixels;
    RunPreprocess(image, {}, &from_pixels);
    EXPECT_NEAR(from_pixels.x, c.x, 1e-9);
    EXPECT_NEAR(from_pixels.y, c.y, 1e-9);
    EXPECT_NEAR(from_pixels.width, c.width, 1e-9);
    EXPECT_NEAR(from_pixels.height, c.height, 1e-9);
  }
}

TEST(PreprocessTest, BgrSwapsThePlanes) {
  const DecodedImage image = RandomImage(300, 260, 3);
  PreprocessOptions options;
  const std::vector<float> rgb = RunPreprocess(image, options);
  options.bgr = true;
  const std::vector<float> bgr = RunPreprocess(image, options);
  const size_t plane = 224 * 224;
  for (size_t i = 0; i < plane; ++i) {
    ASSERT_EQ(bgr[i], rgb[2 * plane + i]);
    ASSERT_EQ(bgr[plane + i], rgb[plane + i]);
    ASSERT_EQ(bgr[2 * plane + i], rgb[i]);
  }
}

TEST(PreprocessTest, CustomSizesAndNormalisation) {
  const DecodedImage image = RandomImage(128, 128, 5);
  PreprocessOptions options;
  options.resize_shorter_side = 128;
  options.input_size = 100;
  options.mean = {0.5f, 0.5f, 0.5f};
  options.std = {0.5f, 0.25f, 1.0f};
  const std::vector<float> out = RunPreprocess(image, options);
  // 128 -> 128 (no resize), crop offset round(28 / 2) = 14.
  for (int c = 0; c < 3; ++c) {
    const float v = image.rgb[((20 + 14) * 128 + (30 + 14)) * 3 + c] / 255.0f;
    EXPECT_NEAR(out[(c * 100 + 20) * 100 + 30], (v - 0.5f) / options.std[c], 1e-6);
  }
}

TEST(PreprocessTest, ZeroPaddingWhenCropExceedsResizedImage) {
  // Resize(200) keeps 300x200; CenterCrop(224) pads 12 rows above and below, crops x from 38.
  const DecodedImage image = RandomImage(300, 200, 11);
  PreprocessOptions options;
  options.resize_shorter_side = 200;
  CropBox box;
  const std::vector<float> out = RunPreprocess(image, options, &box);
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 224; ++y) {
      for (int x = 0; x < 224; ++x) {
        const float got = out[(c * 224 + y) * 224 + x];
        const int sy = y - 12;
        const float expected = (sy < 0 || sy >= 200)
                                   ? Normalised(0, c)
                                   : Normalised(image.rgb[(sy * 300 + x + 38) * 3 + c], c);
        ASSERT_NEAR(got, expected, 1e-6) << "c=" << c << " y=" << y << " x=" << x;
      }
    }
  }
  EXPECT_DOUBLE_EQ(box.x, 38);
  EXPECT_DOUBLE_EQ(box.y, -12);
  EXPECT_DOUBLE_EQ(box.width, 224);
  EXPECT_DOUBLE_EQ(box.height, 224);
}

TEST(PreprocessTest, EnlargingAConstantImageStaysConstant) {
  DecodedImage image = RandomImage(90, 60, 1);
  for (size_t i = 0; i < image.rgb.size(); i += 3) {
    image.rgb[i] = 10;
    image.rgb[i + 1] = 120;
    image.rgb[i + 2] = 250;
  }
  CropBox box;
  const std::vector<float> out = RunPreprocess(image, {}, &box);
  for (int c = 0; c < 3; ++c) {
    const float expected = Normalised(image.rgb[c], c);
    for (size_t i = 0; i < 224 * 224; ++i) ASSERT_NEAR(out[c * 224 * 224 + i], expected, 1e-5);
  }
  // 90x60 -> 384x256, crop (80, 16).
  EXPECT_NEAR(box.x, 80.0 * 90 / 384, 1e-9);
  EXPECT_NEAR(box.y, 16.0 * 60 / 256, 1e-9);
}

// A linear ramp survives both DCT-style block averaging and the resampling filter, so the
// downscaled and full-size decodes of the same photo must give the same tensor (up to rounding).
TEST(PreprocessTest, DownscaledImageGivesTheSameTensorAsFullSize) {
  const auto value = [](double x, double y, int c) {
    return 20.0 + 0.06 * x + 0.04 * y + 25.0 * c;  // in [20, 214] for 1600x1200
  };
  DecodedImage full;
  full.width = full.full_width = 1600;
  full.height = full.full_height = 1200;
  full.rgb.resize(1600 * 1200 * 3);
  for (int y = 0; y < 1200; ++y) {
    for (int x = 0; x < 1600; ++x) {
      for (int c = 0; c < 3; ++c) {
        full.rgb[(y * 1600 + x) * 3 + c] = static_cast<uint8_t>(std::lround(value(x, y, c)));
      }
    }
  }
  DecodedImage quarter;
  quarter.width = 400;
  quarter.height = 300;
  quarter.full_width = 1600;
  quarter.full_height = 1200;
  quarter.scale_num = 1;
  quarter.scale_denom = 4;
  quarter.rgb.resize(400 * 300 * 3);
  for (int y = 0; y < 300; ++y) {
    for (int x = 0; x < 400; ++x) {
      for (int c = 0; c < 3; ++c) {
        // The mean of the 4x4 block is the ramp at its centre.
        quarter.rgb[(y * 400 + x) * 3 + c] =
            static_cast<uint8_t>(std::lround(value(4 * x + 1.5, 4 * y + 1.5, c)));
      }
    }
  }
  const std::vector<float> a = RunPreprocess(full, {});
  const std::vector<float> b = RunPreprocess(quarter, {});
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i)
    max_diff = std::max(max_diff, double{std::abs(a[i] - b[i])});
  // One 8-bit step after normalisation is 1/255/0.224 = 0.0175.
  EXPECT_LT(max_diff, 0.02);
}

TEST(PreprocessTest, FullSizeZeroMeansTheImageIsFullSize) {
  DecodedImage image = RandomImage(256, 256, 9);
  image.full_width = image.full_height = 0;
  const std::vector<float> out = RunPreprocess(image, {});
  EXPECT_NEAR(out[0], Normalised(image.rgb[(16 * 256 + 16) * 3], 0), 1e-6);
}

TEST(PreprocessTest, RejectsBadArguments) {
  const DecodedImage image = RandomImage(64, 64, 2);
  std::vector<float> out(3 * 224 * 224 - 1);
  EXPECT_EQ(Preprocess(image, {}, absl::MakeSpan(out), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  out.resize(3 * 224 * 224 + 3);
  EXPECT_EQ(Preprocess(image, {}, absl::MakeSpan(out), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  out.resize(3 * 224 * 224);

  DecodedImage short_buffer = image;
  short_buffer.rgb.pop_back();
  EXPECT_EQ(Preprocess(short_buffer, {}, absl::MakeSpan(out), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Preprocess(DecodedImage{}, {}, absl::MakeSpan(out), nullptr).code(),
            absl::StatusCode::kInvalidArgument);

  PreprocessOptions options;
  options.std = {0.2f, 0.0f, 0.2f};
  EXPECT_EQ(Preprocess(image, options, absl::MakeSpan(out), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  options = {};
  options.resize_shorter_side = 0;
  EXPECT_EQ(Preprocess(image, options, absl::MakeSpan(out), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeCropBox(0, 10, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cropshield::image
