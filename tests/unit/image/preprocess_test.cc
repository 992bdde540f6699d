#include "server/image/preprocess.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
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

// A photo-like texture for the DCT-downscale geometry test: per channel three sinusoids along x
// or y (periods 59 to 113 full-size pixels, 40 grey levels each, phases differing per channel)
// around mid grey. Its mean over any rectangle has a closed form, so a decode at any scale
// can be rendered as a perfect DCT scaler would (each scaled pixel the mean of the full-size
// pixels it covers) without going through a codec. Every region has a strong gradient in x and
// in y, so the tensor of an image whose pixels are misregistered by even one full-size pixel
// differs from the full-size one by several grey levels.
class SineTexture {
 public:
  // Mean of channel c over the full-size rectangle [x0, x1) x [y0, y1): the sum of its mean
  // along x over [x0, x1) and along y over [y0, y1).
  double MeanX(int c, double x0, double x1) const { return AxisMean(c, true, x0, x1); }
  double MeanY(int c, double y0, double y1) const { return AxisMean(c, false, y0, y1); }

  // The photo (full_w x full_h) decoded at scale num/denom, its pixels taken `shift_x`, `shift_y`
  // full-size pixels off where they belong. Like TurboJPEG, the size is rounded up; the last
  // column and row then cover only the part of a pixel the photo has.
  DecodedImage Render(int full_w, int full_h, int num, int denom, double shift_x = 0,
                      double shift_y = 0) const {
    DecodedImage image;
    image.format = ImageFormat::kJpeg;
    image.full_width = full_w;
    image.full_height = full_h;
    image.width = (full_w * num + denom - 1) / denom;
    image.height = (full_h * num + denom - 1) / denom;
    image.scale_num = num;
    image.scale_denom = denom;
    image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);
    const double step = static_cast<double>(denom) / num;  // full-size pixels per pixel
    std::vector<std::array<double, 3>> columns(image.width), rows(image.height);
    for (int c = 0; c < 3; ++c) {
      for (int x = 0; x < image.width; ++x) {
        columns[x][c] =
            MeanX(c, x * step + shift_x, std::min<double>((x + 1) * step, full_w) + shift_x);
      }
      for (int y = 0; y < image.height; ++y) {
        rows[y][c] =
            MeanY(c, y * step + shift_y, std::min<double>((y + 1) * step, full_h) + shift_y);
      }
    }
    uint8_t* out = image.rgb.data();
    for (int y = 0; y < image.height; ++y) {
      for (int x = 0; x < image.width; ++x) {
        for (int c = 0; c < 3; ++c) {
          *out++ = static_cast<uint8_t>(
              std::clamp<long>(std::lround(128.0 + columns[x][c] + rows[y][c]), 0, 255));
        }
      }
    }
    return image;
  }

 private:
  struct Wave {
    bool along_x;
    double period;  // full-size pixels
    double phase;
    double amplitude;
  };
  double AxisMean(int c, bool along_x, double t0, double t1) const {
    double v = 0;
    for (const Wave& w : kWaves[c]) {
      if (w.along_x == along_x) v += w.amplitude * SineMean(w, t0, t1);
    }
    return v;
  }
  // sin(2 pi t / period + phase) averaged over [t0, t1).
  static double SineMean(const Wave& w, double t0, double t1) {
    const double k = 2 * M_PI / w.period;
    return (std::cos(k * t0 + w.phase) - std::cos(k * t1 + w.phase)) / (k * (t1 - t0));
  }
  static constexpr Wave kWaves[3][3] = {
      {{true, 67, 0.3, 40}, {false, 71, 1.1, 40}, {true, 101, 2.0, 40}},
      {{true, 61, 1.7, 40}, {false, 89, 0.4, 40}, {false, 113, 2.9, 40}},
      {{true, 73, 2.4, 40}, {false, 59, 1.9, 40}, {true, 97, 0.8, 40}},
  };
};

// Largest and 99th-percentile absolute difference of two tensors.
struct DiffStats {
  double max = 0;
  double p99 = 0;
};
DiffStats Compare(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = std::abs(double{a[i]} - double{b[i]});
  DiffStats s;
  const size_t k = d.size() * 99 / 100;
  std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(k), d.end());
  s.p99 = d[k];
  s.max = *std::max_element(d.begin(), d.end());
  return s;
}

// One 8-bit step after normalisation is 1/255/0.224 = 0.0175 (0.0171 for red's 0.229, 0.0174 for
// blue's 0.225).
constexpr double kStep = 1.0 / 255.0 / 0.224;

// The tensor of a DCT-downscaled decode differs from the full-size one only by the resampling
// filter (the box of the DCT scaler before PIL's bilinear kernel on a coarser grid) and rounding.
// Measured on this texture: at most 4 levels (1/4), 3 (3/8), 2 (1/2); the 99th percentile 2 levels
// (1 at 1/2); the error is smallest with no shift and grows by about one level per quarter of a
// full-size pixel of misregistration (half a pixel: 3-4 levels at the 99th percentile; one pixel:
// 6-10 levels at most, 5-7 at the 99th percentile).
constexpr double kMaxScaledDiff = 4.5 * kStep;
constexpr double kP99ScaledDiff = 2.5 * kStep;

TEST(PreprocessTest, DownscaledImageGivesTheSameTensorAsFullSize) {
  const SineTexture texture;
  struct Case {
    int w, h, num, denom;
  };
  // Sizes a scale divides and sizes it does not (1001x751 at 1/4 is 250.25x187.75 pixels: a
  // mapping by width / full_width instead would be 1.5 full-size pixels off at the crop's centre).
  for (const Case& c : {Case{1600, 1200, 1, 4}, Case{1600, 1200, 3, 8}, Case{1600, 1200, 1, 2},
                        Case{1200, 1600, 1, 4}, Case{1200, 1600, 3, 8}, Case{1001, 751, 1, 4},
                        Case{1000, 750, 3, 8}}) {
    SCOPED_TRACE(::testing::Message() << c.w << "x" << c.h << " at " << c.num << "/" << c.denom);
    const std::vector<float> full = RunPreprocess(texture.Render(c.w, c.h, 1, 1), {});
    const DiffStats scaled =
        Compare(full, RunPreprocess(texture.Render(c.w, c.h, c.num, c.denom), {}));
    const DiffStats off_x =
        Compare(full, RunPreprocess(texture.Render(c.w, c.h, c.num, c.denom, 1.0, 0.0), {}));
    const DiffStats off_y =
        Compare(full, RunPreprocess(texture.Render(c.w, c.h, c.num, c.denom, 0.0, 1.0), {}));
    EXPECT_LE(scaled.max, kMaxScaledDiff) << scaled.max / kStep << " levels";
    EXPECT_LE(scaled.p99, kP99ScaledDiff) << scaled.p99 / kStep << " levels";
    // The bounds catch a one-pixel misregistration along either axis (the test can fail).
    EXPECT_GT(off_x.max, kMaxScaledDiff);
    EXPECT_GT(off_x.p99, kP99ScaledDiff);
    EXPECT_GT(off_y.max, kMaxScaledDiff);
    EXPECT_GT(off_y.p99, kP99ScaledDiff);
    // Where the scale does not divide the size, the mapping needs the exact scale factor: by
    // width / full_width instead (what an image without scale_num/denom gets), the tensor is off.
    if ((c.w * c.num) % c.denom != 0 || (c.h * c.num) % c.denom != 0) {
      DecodedImage unscaled = texture.Render(c.w, c.h, c.num, c.denom);
      unscaled.scale_num = unscaled.scale_denom = 1;
      const DiffStats approximate = Compare(full, RunPreprocess(unscaled, {}));
      EXPECT_GT(approximate.max, kMaxScaledDiff);
      EXPECT_GT(approximate.p99, kP99ScaledDiff);
    }
  }
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
