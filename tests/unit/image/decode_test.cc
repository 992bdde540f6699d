#include "server/image/decode.h"

#include <png.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/image/exif.h"
#include "tests/unit/image/test_images.h"

namespace cropshield::image {
namespace {

using ::cropshield::image::test_images::AddExifOrientation;
using ::cropshield::image::test_images::EncodeJpeg;
using ::cropshield::image::test_images::EncodePng;
using ::cropshield::image::test_images::EncodePngRgb;
using ::cropshield::image::test_images::EncodeWebpLossless;
using ::cropshield::image::test_images::EncodeWebpLossy;
using ::cropshield::image::test_images::GradientImage;
using ::cropshield::image::test_images::PatchJpegSize;
using ::cropshield::image::test_images::PngHeaderOnly;
using ::cropshield::image::test_images::PngSpec;
using ::cropshield::image::test_images::Rgb;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint8_t kRed[3] = {230, 20, 20};
constexpr uint8_t kBlue[3] = {20, 20, 230};
constexpr uint8_t kGreen[3] = {20, 230, 20};
constexpr uint8_t kGray[3] = {128, 128, 128};

// Width x height image split into four coloured quadrants: TL red, TR blue, BL green, BR gray.
Rgb Quadrants(int width, int height) {
  Rgb image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const bool right = x >= width / 2;
      const bool bottom = y >= height / 2;
      const uint8_t* c = bottom ? (right ? kGray : kGreen) : (right ? kBlue : kRed);
      uint8_t* p = &image.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = c[0];
      p[1] = c[1];
      p[2] = c[2];
    }
  }
  return image;
}

std::vector<uint8_t> PixelAt(const DecodedImage& image, int x, int y) {
  const size_t i = (static_cast<size_t>(y) * image.width + x) * 3;
  return {image.rgb[i], image.rgb[i + 1], image.rgb[i + 2]};
}

// True when every channel of the pixel at (x, y) is within `tolerance` of `expected`.
::testing::AssertionResult ColourNear(const DecodedImage& image, int x, int y,
                                      const uint8_t* expected, int tolerance) {
  const std::vector<uint8_t> got = PixelAt(image, x, y);
  for (int c = 0; c < 3; ++c) {
    if (std::abs(int{got[c]} - int{expected[c]}) > tolerance) {
      return ::testing::AssertionFailure()
             << "pixel (" << x << "," << y << ") is (" << int{got[0]} << "," << int{got[1]} << ","
             << int{got[2]} << "), expected (" << int{expected[0]} << "," << int{expected[1]} << ","
             << int{expected[2]} << ") +-" << tolerance;
    }
  }
  return ::testing::AssertionSuccess();
}

DecodedImage DecodeOrDie(const std::string& bytes, DecodeOptions options = {}) {
  absl::StatusOr<DecodedImage> image = DecodeImage(bytes, options);
  EXPECT_TRUE(image.ok()) << image.status();
  if (!image.ok()) return {};
  EXPECT_EQ(image->rgb.size(), static_cast<size_t>(image->width) * image->height * 3);
  return *std::move(image);
}

// ---------------------------------------------------------------------------------------------
// Format detection.

TEST(DetectFormatTest, RecognisesMagicBytes) {
  const Rgb image = GradientImage(8, 8);
  EXPECT_EQ(DetectFormat(EncodeJpeg(image, 90, TJSAMP_444)), ImageFormat::kJpeg);
  EXPECT_EQ(DetectFormat(EncodePngRgb(image)), ImageFormat::kPng);
  EXPECT_EQ(DetectFormat(EncodeWebpLossless(image)), ImageFormat::kWebp);
  EXPECT_EQ(DetectFormat(""), ImageFormat::kUnknown);
  EXPECT_EQ(DetectFormat("GIF89a\x01\x00\x01\x00"), ImageFormat::kUnknown);
  EXPECT_EQ(DetectFormat("RIFF\x10\0\0\0WAVEfmt "), ImageFormat::kUnknown);
}

TEST(DetectFormatTest, Names) {
  EXPECT_EQ(ImageFormatName(ImageFormat::kJpeg), "jpeg");
  EXPECT_EQ(ImageFormatName(ImageFormat::kPng), "png");
  EXPECT_EQ(ImageFormatName(ImageFormat::kWebp), "webp");
  EXPECT_EQ(ImageFormatName(ImageFormat::kUnknown), "unknown");
}

// ---------------------------------------------------------------------------------------------
// Probing.

TEST(ProbeImageTest, ReportsFormatAndSize) {
  const Rgb image = GradientImage(37, 21);
  struct Case {
    std::string bytes;
    ImageFormat format;
  };
  const Case cases[] = {{EncodeJpeg(image, 90, TJSAMP_420), ImageFormat::kJpeg},
                        {EncodePngRgb(image), ImageFormat::kPng},
                        {EncodeWebpLossless(image), ImageFormat::kWebp},
                        {EncodeWebpLossy(image, 80), ImageFormat::kWebp}};
  for (const Case& c : cases) {
    absl::StatusOr<ImageInfo> info = ProbeImage(c.bytes);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->format, c.format);
    EXPECT_EQ(info->width, 37);
    EXPECT_EQ(info->height, 21);
    EXPECT_EQ(info->orientation, 1);
  }
}

TEST(ProbeImageTest, ReadsExifOrientationWithoutApplyingIt) {
  const std::string jpeg =
      AddExifOrientation(EncodeJpeg(GradientImage(40, 20), 90, TJSAMP_444), 6, /*big_endian=*/true);
  absl::StatusOr<ImageInfo> info = ProbeImage(jpeg);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 40);
  EXPECT_EQ(info->height, 20);
  EXPECT_EQ(info->orientation, 6);
}

TEST(ProbeImageTest, HugeHeadersAreProbedNotRefused) {
  absl::StatusOr<ImageInfo> png = ProbeImage(PngHeaderOnly(20000, 20000));
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(png->width, 20000);
  EXPECT_EQ(png->height, 20000);
  const std::string jpeg =
      PatchJpegSize(EncodeJpeg(GradientImage(16, 16), 90, TJSAMP_444), 20000, 20000);
  absl::StatusOr<ImageInfo> info = ProbeImage(jpeg);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 20000);
}

// ---------------------------------------------------------------------------------------------
// JPEG.

TEST(DecodeJpegTest, ColoursSurviveForEverySubsampling) {
  const Rgb image = Quadrants(64, 48);
  for (int subsampling : {TJSAMP_444, TJSAMP_422, TJSAMP_420}) {
    SCOPED_TRACE(absl::StrCat("subsampling ", subsampling));
    const DecodedImage decoded = DecodeOrDie(EncodeJpeg(image, 92, subsampling));
    EXPECT_EQ(decoded.format, ImageFormat::kJpeg);
    EXPECT_EQ(decoded.width, 64);
    EXPECT_EQ(decoded.height, 48);
    EXPECT_EQ(decoded.full_width, 64);
    EXPECT_EQ(decoded.full_height, 48);
    EXPECT_EQ(decoded.scale_num, 1);
    EXPECT_EQ(decoded.scale_denom, 1);
    EXPECT_TRUE(ColourNear(decoded, 16, 12, kRed, 8));
    EXPECT_TRUE(ColourNear(decoded, 48, 12, kBlue, 8));
    EXPECT_TRUE(ColourNear(decoded, 16, 36, kGreen, 8));
    EXPECT_TRUE(ColourNear(decoded, 48, 36, kGray, 8));
  }
}

TEST(DecodeJpegTest, GrayscaleBecomesRgb) {
  const DecodedImage decoded = DecodeOrDie(EncodeJpeg(GradientImage(32, 32), 95, TJSAMP_GRAY));
  ASSERT_EQ(decoded.width, 32);
  for (size_t i = 0; i < decoded.rgb.size(); i += 3) {
    ASSERT_EQ(decoded.rgb[i], decoded.rgb[i + 1]);
    ASSERT_EQ(decoded.rgb[i], decoded.rgb[i + 2]);
  }
}

TEST(DecodeJpegTest, ProgressiveJpeg) {
  const Rgb image = Quadrants(64, 48);
  tjhandle handle = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(handle, image.pixels.data(), 64, 64 * 3, 48, TJPF_RGB, &buffer, &size,
                        TJSAMP_444, 92, TJFLAG_PROGRESSIVE),
            0);
  const std::string jpeg(reinterpret_cast<char*>(buffer), size);
  tjFree(buffer);
  tjDestroy(handle);
  const DecodedImage decoded = DecodeOrDie(jpeg);
  EXPECT_TRUE(ColourNear(decoded, 16, 12, kRed, 8));
  EXPECT_TRUE(ColourNear(decoded, 48, 36, kGray, 8));
}

// tjCompress2 from CMYK pixels writes a 4-component YCCK JPEG with an Adobe APP14 segment; the
// samples are stored as given, i.e. read as inverted (255 = no ink), as Photoshop and PIL do.
// Left half: no ink (white); right half: full cyan (0, 255, 255).
std::string YcckJpeg(int width, int height) {
  std::vector<uint8_t> stored(static_cast<size_t>(width) * height * 4, 255);
  for (int y = 0; y < height; ++y) {
    for (int x = width / 2; x < width; ++x) stored[(static_cast<size_t>(y) * width + x) * 4] = 0;
  }
  return test_images::EncodeJpegCmyk(width, height, stored, 95, TJSAMP_444);
}

TEST(DecodeJpegTest, YcckAdobeJpegDecodesToRgb) {
  const std::string jpeg = YcckJpeg(32, 16);
  ASSERT_FALSE(jpeg.empty());
  const DecodedImage decoded = DecodeOrDie(jpeg);
  ASSERT_EQ(decoded.width, 32);
  ASSERT_EQ(decoded.height, 16);
  constexpr uint8_t kWhite[3] = {255, 255, 255};
  constexpr uint8_t kCyan[3] = {0, 255, 255};
  EXPECT_TRUE(ColourNear(decoded, 4, 8, kWhite, 4));
  EXPECT_TRUE(ColourNear(decoded, 28, 8, kCyan, 4));
  // The same at a DCT scale and in a probe.
  DecodeOptions half;
  half.min_shorter_side = 8;
  absl::StatusOr<DecodedImage> scaled = DecodeImage(jpeg, half);
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  EXPECT_EQ(scaled->width, 16);
  EXPECT_TRUE(ColourNear(*scaled, 14, 4, kCyan, 4));
  absl::StatusOr<ImageInfo> info = ProbeImage(jpeg);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->width, 32);
}

TEST(DecodeJpegTest, CmykJpegKeepsExifOrientation) {
  // Orientation 6: rotate 90 degrees clockwise for display; white (left) ends on top.
  const std::string jpeg = AddExifOrientation(YcckJpeg(32, 16), 6, /*big_endian=*/false);
  const DecodedImage decoded = DecodeOrDie(jpeg);
  ASSERT_EQ(decoded.width, 16);
  ASSERT_EQ(decoded.height, 32);
  constexpr uint8_t kWhite[3] = {255, 255, 255};
  constexpr uint8_t kCyan[3] = {0, 255, 255};
  EXPECT_TRUE(ColourNear(decoded, 8, 4, kWhite, 4));
  EXPECT_TRUE(ColourNear(decoded, 8, 28, kCyan, 4));
}

// ---------------------------------------------------------------------------------------------
// EXIF orientation: a 64x32 image whose quadrants are A=red (TL), B=blue (TR), C=green (BL),
// D=gray (BR) as stored. Expected display positions follow the EXIF 2.3 definitions (row 0 /
// column 0 placement), written out per orientation rather than computed.

struct OrientationCase {
  int orientation;
  // Colours of the display TL, TR, BL, BR quadrants.
  const uint8_t* tl;
  const uint8_t* tr;
  const uint8_t* bl;
  const uint8_t* br;
};

const OrientationCase kOrientationCases[] = {
    {1, kRed, kBlue, kGreen, kGray},  // as stored
    {2, kBlue, kRed, kGray, kGreen},  // mirrored left-right
    {3, kGray, kGreen, kBlue, kRed},  // rotated 180
    {4, kGreen, kGray, kRed, kBlue},  // mirrored top-bottom
    {5, kRed, kGreen, kBlue, kGray},  // transposed
    {6, kGreen, kRed, kGray, kBlue},  // rotate 90 clockwise to display
    {7, kGray, kBlue, kGreen, kRed},  // transversed
    {8, kBlue, kGray, kRed, kGreen},  // rotate 90 counter-clockwise to display
};

class OrientationTest : public ::testing::TestWithParam<std::tuple<OrientationCase, bool>> {};

TEST_P(OrientationTest, QuadrantsLandWhereExifSays) {
  const auto& [c, big_endian] = GetParam();
  const std::string jpeg =
      AddExifOrientation(EncodeJpeg(Quadrants(64, 32), 95, TJSAMP_444), c.orientation, big_endian);
  const DecodedImage decoded = DecodeOrDie(jpeg);
  const bool swapped = c.orientation >= 5;
  ASSERT_EQ(decoded.width, swapped ? 32 : 64);
  ASSERT_EQ(decoded.height, swapped ? 64 : 32);
  EXPECT_EQ(decoded.full_width, decoded.width);
  EXPECT_EQ(decoded.full_height, decoded.height);
  const int w = decoded.width;
  const int h = decoded.height;
  EXPECT_TRUE(ColourNear(decoded, w / 4, h / 4, c.tl, 10)) << "top-left";
  EXPECT_TRUE(ColourNear(decoded, 3 * w / 4, h / 4, c.tr, 10)) << "top-right";
  EXPECT_TRUE(ColourNear(decoded, w / 4, 3 * h / 4, c.bl, 10)) << "bottom-left";
  EXPECT_TRUE(ColourNear(decoded, 3 * w / 4, 3 * h / 4, c.br, 10)) << "bottom-right";
}

INSTANTIATE_TEST_SUITE_P(AllOrientations, OrientationTest,
                         ::testing::Combine(::testing::ValuesIn(kOrientationCases),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return absl::StrCat(
                               "Orientation", std::get<0>(info.param).orientation,
                               std::get<1>(info.param) ? "BigEndian" : "LittleEndian");
                         });

TEST(OrientationTest, RotationAppliesAfterDctScaling) {
  const std::string jpeg =
      AddExifOrientation(EncodeJpeg(GradientImage(1600, 1200), 90, TJSAMP_420), 6, false);
  DecodeOptions options;
  options.min_shorter_side = 256;
  const DecodedImage decoded = DecodeOrDie(jpeg, options);
  EXPECT_EQ(decoded.width, 300);
  EXPECT_EQ(decoded.height, 400);
  EXPECT_EQ(decoded.full_width, 1200);
  EXPECT_EQ(decoded.full_height, 1600);
}

TEST(ExifTest, MalformedOrOutOfRangeOrientationReadsAsOne) {
  using internal::ParseExifOrientation;
  EXPECT_EQ(ParseExifOrientation(""), 1);
  EXPECT_EQ(ParseExifOrientation("MM"), 1);
  EXPECT_EQ(ParseExifOrientation(std::string("XX\0*\0\0\0\x08", 8)), 1);
  // IFD offset far past the end.
  EXPECT_EQ(ParseExifOrientation(std::string("MM\0*\x7f\xff\xff\xff", 8)), 1);
  // One entry claiming to be Orientation, truncated mid-entry.
  EXPECT_EQ(ParseExifOrientation(std::string("II*\0\x08\0\0\0\x01\0\x12\x01\x03\0", 14)), 1);
  // Well-formed, values 0 and 9 are out of range; 3 is fine.
  const auto tiff = [](int value) {
    return std::string("II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0", 18) +
           static_cast<char>(value) + std::string("\0\0\0\0\0\0\0", 7);
  };
  EXPECT_EQ(ParseExifOrientation(tiff(3)), 3);
  EXPECT_EQ(ParseExifOrientation(tiff(0)), 1);
  EXPECT_EQ(ParseExifOrientation(tiff(9)), 1);
}

TEST(ExifTest, BadExifDoesNotFailTheDecode) {
  std::string jpeg = EncodeJpeg(Quadrants(64, 32), 95, TJSAMP_444);
  const std::string junk = std::string(
      "\xFF\xE1\x00\x0C"
      "Exif\0\0MMXX",
      14);
  jpeg.insert(2, junk);
  const DecodedImage decoded = DecodeOrDie(jpeg);
  EXPECT_EQ(decoded.width, 64);
  EXPECT_TRUE(ColourNear(decoded, 16, 8, kRed, 10));
}

// ---------------------------------------------------------------------------------------------
// DCT-domain scaling.

TEST(DctScalingTest, PicksSmallestFactorKeepingShorterSide) {
  const std::string jpeg = EncodeJpeg(GradientImage(1600, 1200), 90, TJSAMP_420);
  struct Case {
    int min_shorter_side, width, height, num, denom;
  };
  const Case cases[] = {
      {0, 1600, 1200, 1, 1},    {256, 400, 300, 1, 4},    {300, 400, 300, 1, 4},
      {301, 600, 450, 3, 8},    {150, 200, 150, 1, 8},    {1, 200, 150, 1, 8},
      {1200, 1600, 1200, 1, 1}, {5000, 1600, 1200, 1, 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat("min_shorter_side ", c.min_shorter_side));
    DecodeOptions options;
    options.min_shorter_side = c.min_shorter_side;
    const DecodedImage decoded = DecodeOrDie(jpeg, options);
    EXPECT_EQ(decoded.width, c.width);
    EXPECT_EQ(decoded.height, c.height);
    EXPECT_EQ(decoded.full_width, 1600);
    EXPECT_EQ(decoded.full_height, 1200);
    EXPECT_EQ(decoded.scale_num, c.num);
    EXPECT_EQ(decoded.scale_denom, c.denom);
  }
}

// A textured photo: per channel sinusoids along x and y (periods 29-67 pixels, amplitude 45 each),
// so that every pixel sits on a steep slope in both directions.
Rgb WavesImage(int width, int height) {
  Rgb image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  constexpr double kPeriods[3][2] = {{41, 53}, {29, 67}, {47, 37}};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) {
        const double v = 128 + 45 * std::sin(2 * M_PI * x / kPeriods[c][0] + c) +
                         45 * std::sin(2 * M_PI * y / kPeriods[c][1] + 2 * c);
        image.pixels[(static_cast<size_t>(y) * width + x) * 3 + c] =
            static_cast<uint8_t>(std::lround(v));
      }
    }
  }
  return image;
}

// Largest and 99th-percentile absolute difference between each pixel of `small` (decoded at
// 1/factor) and the mean of the factor x factor block of `full` it stands for, that block moved
// by (dx, dy) full-size pixels.
std::pair<int, int> BlockMeanDiff(const DecodedImage& full, const DecodedImage& small, int factor,
                                  int dx, int dy) {
  std::vector<int> diffs;
  for (int y = 2; y < small.height - 2; ++y) {
    for (int x = 2; x < small.width - 2; ++x) {
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int j = 0; j < factor; ++j) {
          const size_t row = static_cast<size_t>(y * factor + j + dy) * full.width;
          const uint8_t* block = &full.rgb[(row + x * factor + dx) * 3 + c];
          for (int i = 0; i < factor; ++i) sum += block[i * 3];
        }
        const double mean = static_cast<double>(sum) / (factor * factor);
        const int got = small.rgb[(static_cast<size_t>(y) * small.width + x) * 3 + c];
        diffs.push_back(static_cast<int>(std::lround(std::abs(got - mean))));
      }
    }
  }
  std::sort(diffs.begin(), diffs.end());
  return {diffs.back(), diffs[diffs.size() * 99 / 100]};
}

// A pixel decoded at 1/2, 1/4 or 1/8 is the mean of the full decode's block it covers, on a
// texture where a block one pixel off differs by several levels. Measured (TurboJPEG 2.1, quality
// 95, 4:4:4): max 2-3 levels, p99 1-2; the block one pixel off in x or y: max 9-12, p99 8-10.
TEST(DctScalingTest, ScaledPixelsAreTheMeansOfTheirFullSizeBlocks) {
  const std::string jpeg = EncodeJpeg(WavesImage(800, 600), 95, TJSAMP_444);
  const DecodedImage full = DecodeOrDie(jpeg);
  for (const auto& [min_side, factor] : {std::pair{300, 2}, {150, 4}, {75, 8}}) {
    SCOPED_TRACE(absl::StrCat("1/", factor));
    DecodeOptions options;
    options.min_shorter_side = min_side;
    const DecodedImage small = DecodeOrDie(jpeg, options);
    ASSERT_EQ(small.width, 800 / factor);
    ASSERT_EQ(small.scale_denom, factor);
    const auto [max, p99] = BlockMeanDiff(full, small, factor, 0, 0);
    const auto [max_x, p99_x] = BlockMeanDiff(full, small, factor, 1, 0);
    const auto [max_y, p99_y] = BlockMeanDiff(full, small, factor, 0, 1);
    EXPECT_LE(max, 4);
    EXPECT_LE(p99, 2);
    // The bounds fail for a one-pixel misregistration in x or y.
    EXPECT_GT(max_x, 4);
    EXPECT_GT(p99_x, 2);
    EXPECT_GT(max_y, 4);
    EXPECT_GT(p99_y, 2);
  }
}

TEST(DctScalingTest, OtherFormatsIgnoreIt) {
  DecodeOptions options;
  options.min_shorter_side = 16;
  const DecodedImage png = DecodeOrDie(EncodePngRgb(GradientImage(256, 128)), options);
  EXPECT_EQ(png.width, 256);
  const DecodedImage webp = DecodeOrDie(EncodeWebpLossless(GradientImage(256, 128)), options);
  EXPECT_EQ(webp.width, 256);
}

// ---------------------------------------------------------------------------------------------
// PNG: every colour type, exact values.

// 6x3 RGB pattern with all-distinct values.
std::vector<uint8_t> PatternRgb(int width, int height) {
  std::vector<uint8_t> rgb;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      rgb.push_back(static_cast<uint8_t>(10 * x + 3 * y));
      rgb.push_back(static_cast<uint8_t>(200 - 7 * x + y));
      rgb.push_back(static_cast<uint8_t>(50 + 11 * y + x));
    }
  }
  return rgb;
}

TEST(DecodePngTest, Rgb8) {
  const std::vector<uint8_t> rgb = PatternRgb(6, 3);
  PngSpec spec{6, 3, PNG_COLOR_TYPE_RGB, 8, false, rgb, {}, {}};
  const DecodedImage decoded = DecodeOrDie(EncodePng(spec));
  EXPECT_EQ(decoded.format, ImageFormat::kPng);
  EXPECT_EQ(decoded.width, 6);
  EXPECT_EQ(decoded.height, 3);
  EXPECT_EQ(decoded.full_width, 6);
  EXPECT_EQ(decoded.full_height, 3);
  EXPECT_EQ(decoded.rgb, rgb);
}

TEST(DecodePngTest, InterlacedRgb8) {
  const std::vector<uint8_t> rgb = PatternRgb(13, 11);
  PngSpec spec{13, 11, PNG_COLOR_TYPE_RGB, 8, true, rgb, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, rgb);
}

TEST(DecodePngTest, RgbaDropsAlphaWithoutCompositing) {
  const std::vector<uint8_t> rgb = PatternRgb(6, 3);
  std::vector<uint8_t> rgba;
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgba.insert(rgba.end(), {rgb[i], rgb[i + 1], rgb[i + 2], static_cast<uint8_t>(i * 7)});
  }
  rgba[3] = 0;  // fully transparent: colour must still come through
  PngSpec spec{6, 3, PNG_COLOR_TYPE_RGBA, 8, false, rgba, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, rgb);
}

TEST(DecodePngTest, Rgb16KeepsHighByte) {
  const std::vector<uint8_t> rgb = PatternRgb(5, 4);
  std::vector<uint8_t> samples;
  for (size_t i = 0; i < rgb.size(); ++i) {
    samples.push_back(rgb[i]);
    samples.push_back(static_cast<uint8_t>(0xFF - i));  // low byte: must not matter
  }
  PngSpec spec{5, 4, PNG_COLOR_TYPE_RGB, 16, false, samples, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, rgb);
}

TEST(DecodePngTest, Rgba16) {
  const std::vector<uint8_t> rgb = PatternRgb(5, 4);
  std::vector<uint8_t> samples;
  for (size_t i = 0; i < rgb.size(); i += 3) {
    for (int c = 0; c < 3; ++c) samples.insert(samples.end(), {rgb[i + c], 0x80});
    samples.insert(samples.end(), {0x12, 0x34});
  }
  PngSpec spec{5, 4, PNG_COLOR_TYPE_RGBA, 16, false, samples, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, rgb);
}

std::vector<uint8_t> GrayToRgb(const std::vector<uint8_t>& gray) {
  std::vector<uint8_t> rgb;
  for (uint8_t g : gray) rgb.insert(rgb.end(), {g, g, g});
  return rgb;
}

TEST(DecodePngTest, Gray8) {
  const std::vector<uint8_t> gray = {0, 17, 34, 99, 128, 200, 254, 255};
  PngSpec spec{4, 2, PNG_COLOR_TYPE_GRAY, 8, false, gray, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, GrayToRgb(gray));
}

TEST(DecodePngTest, Gray2BitExpandsToFullRange) {
  // One row of 8 pixels: 2-bit values 0,1,2,3,3,2,1,0 packed MSB first.
  const std::vector<uint8_t> packed = {0b00011011, 0b11100100};
  PngSpec spec{8, 1, PNG_COLOR_TYPE_GRAY, 2, false, packed, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, GrayToRgb({0, 85, 170, 255, 255, 170, 85, 0}));
}

TEST(DecodePngTest, Gray16KeepsHighByte) {
  const std::vector<uint8_t> samples = {0x00, 0xFF, 0x12, 0x34, 0xAB, 0xCD, 0xFF, 0x00};
  PngSpec spec{2, 2, PNG_COLOR_TYPE_GRAY, 16, false, samples, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, GrayToRgb({0x00, 0x12, 0xAB, 0xFF}));
}

TEST(DecodePngTest, GrayAlphaDropsAlpha) {
  const std::vector<uint8_t> samples = {10, 0, 20, 255, 30, 128, 40, 1};
  PngSpec spec{2, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, false, samples, {}, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, GrayToRgb({10, 20, 30, 40}));
}

TEST(DecodePngTest, Palette8WithTransparency) {
  const std::vector<uint8_t> palette = {255, 0, 0, 0, 255, 0, 0, 0, 255, 12, 34, 56};
  const std::vector<uint8_t> indices = {0, 1, 2, 3, 3, 2, 1, 0};
  PngSpec spec{4, 2, PNG_COLOR_TYPE_PALETTE, 8, false, indices, palette, {0, 128}};
  std::vector<uint8_t> expected;
  for (uint8_t i : indices) {
    expected.insert(expected.end(), palette.begin() + 3 * i, palette.begin() + 3 * i + 3);
  }
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, expected);
}

TEST(DecodePngTest, Palette4BitInterlaced) {
  std::vector<uint8_t> palette;
  for (int i = 0; i < 16; ++i) {
    palette.insert(palette.end(), {static_cast<uint8_t>(i * 16), static_cast<uint8_t>(255 - i),
                                   static_cast<uint8_t>(i * 3)});
  }
  const int width = 9;
  const int height = 7;
  const size_t row_bytes = (width + 1) / 2;
  std::vector<uint8_t> packed(row_bytes * height, 0);
  std::vector<uint8_t> expected;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const uint8_t index = static_cast<uint8_t>((x * 5 + y * 3) % 16);
      packed[y * row_bytes + x / 2] |= (x % 2 == 0) ? (index << 4) : index;
      expected.insert(expected.end(), palette.begin() + 3 * index, palette.begin() + 3 * index + 3);
    }
  }
  PngSpec spec{width, height, PNG_COLOR_TYPE_PALETTE, 4, true, packed, palette, {}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, expected);
}

TEST(DecodePngTest, RgbTrnsIsIgnored) {
  const std::vector<uint8_t> rgb = {1, 2, 3, 4, 5, 6, 1, 2, 3, 9, 9, 9};
  // tRNS marks colour (1,2,3) transparent; the pixels must keep that colour.
  PngSpec spec{2, 2, PNG_COLOR_TYPE_RGB, 8, false, rgb, {}, {0, 1, 0, 2, 0, 3}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, rgb);
}

TEST(DecodePngTest, GrayTrnsIsIgnored) {
  const std::vector<uint8_t> gray = {7, 8, 7, 9};
  PngSpec spec{2, 2, PNG_COLOR_TYPE_GRAY, 8, false, gray, {}, {0, 7}};
  EXPECT_EQ(DecodeOrDie(EncodePng(spec)).rgb, GrayToRgb(gray));
}

// ---------------------------------------------------------------------------------------------
// WebP.

TEST(DecodeWebpTest, LosslessIsExact) {
  const Rgb image{7, 5, PatternRgb(7, 5)};
  const DecodedImage decoded = DecodeOrDie(EncodeWebpLossless(image));
  EXPECT_EQ(decoded.format, ImageFormat::kWebp);
  EXPECT_EQ(decoded.width, 7);
  EXPECT_EQ(decoded.height, 5);
  EXPECT_EQ(decoded.rgb, image.pixels);
}

TEST(DecodeWebpTest, LossyIsClose) {
  const DecodedImage decoded = DecodeOrDie(EncodeWebpLossy(Quadrants(64, 48), 90));
  ASSERT_EQ(decoded.width, 64);
  EXPECT_TRUE(ColourNear(decoded, 16, 12, kRed, 12));
  EXPECT_TRUE(ColourNear(decoded, 48, 12, kBlue, 12));
  EXPECT_TRUE(ColourNear(decoded, 16, 36, kGreen, 12));
  EXPECT_TRUE(ColourNear(decoded, 48, 36, kGray, 12));
}

TEST(DecodeWebpTest, AlphaIsDropped) {
  const std::vector<uint8_t> rgb = PatternRgb(6, 4);
  std::vector<uint8_t> rgba;
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgba.insert(rgba.end(),
                {rgb[i], rgb[i + 1], rgb[i + 2], static_cast<uint8_t>(1 + (i * 5) % 255)});
  }
  uint8_t* buffer = nullptr;
  const size_t size = WebPEncodeLosslessRGBA(rgba.data(), 6, 4, 6 * 4, &buffer);
  ASSERT_GT(size, 0u);
  const std::string webp(reinterpret_cast<char*>(buffer), size);
  WebPFree(buffer);
  EXPECT_EQ(DecodeOrDie(webp).rgb, rgb);
}

// ---------------------------------------------------------------------------------------------
// Hostile input: every case must be INVALID_ARGUMENT with a message, never a crash.

void ExpectRejected(const std::string& bytes, const std::string& what,
                    const std::string& message_part = "") {
  SCOPED_TRACE(what);
  absl::StatusOr<DecodedImage> decoded = DecodeImage(bytes, {});
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument) << decoded.status();
  EXPECT_FALSE(decoded.status().message().empty());
  if (!message_part.empty()) {
    EXPECT_THAT(decoded.status().message(), HasSubstr(message_part));
  }
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

TEST(HostileInputTest, EmptyAndRandom) {
  ExpectRejected("", "empty", "empty");
  EXPECT_FALSE(ProbeImage("").ok());
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    ExpectRejected(RandomBytes(1 + seed * 97, seed), absl::StrCat("random seed ", seed));
  }
}

TEST(HostileInputTest, RandomBytesBehindEachSignature) {
  const std::string signatures[] = {
      std::string("\xFF\xD8\xFF", 3), std::string("\x89PNG\r\n\x1a\n", 8),
      std::string("RIFF\x40\0\0\0WEBPVP8 ", 16), std::string("RIFF\x40\0\0\0WEBPVP8L", 16)};
  for (const std::string& signature : signatures) {
    for (uint32_t seed = 1; seed <= 50; ++seed) {
      const std::string bytes = signature + RandomBytes(seed * 13, seed);
      ExpectRejected(bytes, absl::StrCat(ImageFormatName(DetectFormat(bytes)), " seed ", seed));
      EXPECT_FALSE(ProbeImage(bytes).ok() && DecodeImage(bytes, {}).ok());
    }
  }
}

TEST(HostileInputTest, TruncatedFilesAreRejectedAsTruncated) {
  const Rgb image = GradientImage(96, 64);
  const std::string files[] = {EncodeJpeg(image, 90, TJSAMP_420), EncodePngRgb(image),
                               EncodeWebpLossless(image), EncodeWebpLossy(image, 80)};
  for (const std::string& file : files) {
    const std::string name(ImageFormatName(DetectFormat(file)));
    ASSERT_TRUE(DecodeImage(file, {}).ok()) << name;
    const size_t n = file.size();
    for (size_t cut : {size_t{1}, size_t{2}, size_t{3}, size_t{7}, size_t{11}, size_t{20},
                       size_t{33}, size_t{60}, n / 3, n / 2, n - 40, n - 12, n - 2, n - 1}) {
      if (cut >= n) continue;
      ExpectRejected(file.substr(0, cut), absl::StrCat(name, " cut to ", cut, " of ", n),
                     "truncated");
    }
  }
}

TEST(HostileInputTest, HugeHeadersAreRefusedBeforeDecoding) {
  // Neither file holds any pixel data: the limit must trigger before a decoder notices that.
  const std::string expected =
      "image is 20000x20000 = 400000000 pixels, over the limit of 40000000";
  absl::StatusOr<DecodedImage> png = DecodeImage(PngHeaderOnly(20000, 20000), {});
  EXPECT_EQ(png.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(png.status().message(), expected);

  const std::string jpeg =
      PatchJpegSize(EncodeJpeg(GradientImage(16, 16), 90, TJSAMP_444), 20000, 20000);
  absl::StatusOr<DecodedImage> decoded = DecodeImage(jpeg, {});
  EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(decoded.status().message(), expected);
}

TEST(HostileInputTest, MaxPixelsAppliesToEveryFormat) {
  const Rgb image = GradientImage(40, 30);
  DecodeOptions options;
  options.max_pixels = 40 * 30 - 1;
  for (const std::string& file :
       {EncodeJpeg(image, 90, TJSAMP_420), EncodePngRgb(image), EncodeWebpLossless(image)}) {
    absl::StatusOr<DecodedImage> decoded = DecodeImage(file, options);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(decoded.status().message(), HasSubstr("over the limit of 1199"));
    options.max_pixels = 40 * 30;
    EXPECT_TRUE(DecodeImage(file, options).ok());
    options.max_pixels = 40 * 30 - 1;
  }
}

TEST(HostileInputTest, UnsupportedFormatsAreNamed) {
  ExpectRejected(std::string("GIF89a\x10\0\x10\0\x80\0\0", 13) + RandomBytes(64, 3), "gif", "GIF");
  ExpectRejected(std::string("BM\x36\x03\0\0\0\0\0\0\x36\0\0\0", 14) + RandomBytes(64, 4), "bmp",
                 "BMP");
  ExpectRejected(std::string("II*\0\x08\0\0\0", 8), "tiff", "TIFF");
  ExpectRejected(std::string("\0\0\0\x1c"
                             "ftypheic\0\0\0\0",
                             16),
                 "heic", "HEIF");
  EXPECT_EQ(ProbeImage("GIF89a\x10\0\x10\0").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostileInputTest, CorruptJpegScanIsRejected) {
  std::string jpeg = EncodeJpeg(GradientImage(96, 64), 90, TJSAMP_420);
  // Insert a stray restart marker in the middle of the entropy-coded data.
  jpeg.insert(jpeg.size() / 2 + 40, std::string("\xFF\xD3", 2));
  ExpectRejected(jpeg, "stray marker in scan", "JPEG");
  // Corrupt PNG CRC of the IHDR.
  std::string png = EncodePngRgb(GradientImage(8, 8));
  png[29] ^= 0x55;
  ExpectRejected(png, "bad IHDR CRC", "PNG");
  EXPECT_EQ(ProbeImage(png).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostileInputTest, InvalidOptions) {
  const std::string png = EncodePngRgb(GradientImage(8, 8));
  DecodeOptions options;
  options.max_pixels = 0;
  EXPECT_EQ(DecodeImage(png, options).status().code(), absl::StatusCode::kInvalidArgument);
  options.max_pixels = 100;
  options.min_shorter_side = -1;
  EXPECT_EQ(DecodeImage(png, options).status().code(), absl::StatusCode::kInvalidArgument);
}

// Cheap in-process mutation fuzzing: flipped and overwritten bytes anywhere in valid files. The
// decoder may accept some mutants (JPEG entropy data has little redundancy); it must never crash
// and must return consistent sizes or INVALID_ARGUMENT.
TEST(HostileInputTest, MutatedFilesNeverCrash) {
  const Rgb image = GradientImage(48, 40);
  const std::string jpeg_exif = AddExifOrientation(EncodeJpeg(image, 85, TJSAMP_420), 6, true);
  PngSpec interlaced{48, 40, PNG_COLOR_TYPE_RGB, 8, true, image.pixels, {}, {}};
  const std::string files[] = {jpeg_exif, EncodePngRgb(image), EncodePng(interlaced),
                               EncodeWebpLossless(image), EncodeWebpLossy(image, 75)};
  std::mt19937 rng(1234);
  int accepted = 0;
  int rejected = 0;
  for (const std::string& file : files) {
    for (int round = 0; round < 300; ++round) {
      std::string mutant = file;
      const int edits = 1 + static_cast<int>(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        const size_t pos = rng() % mutant.size();
        if (rng() % 2) {
          mutant[pos] = static_cast<char>(mutant[pos] ^ (1u << (rng() % 8)));
        } else {
          mutant[pos] = static_cast<char>(rng() & 0xFF);
        }
      }
      DecodeOptions options;
      options.min_shorter_side = (round % 3 == 0) ? 16 : 0;
      absl::StatusOr<DecodedImage> decoded = DecodeImage(mutant, options);
      (void)ProbeImage(mutant);
      if (decoded.ok()) {
        ++accepted;
        ASSERT_EQ(decoded->rgb.size(), static_cast<size_t>(decoded->width) * decoded->height * 3);
      } else {
        ++rejected;
        ASSERT_FALSE(decoded.status().message().empty());
        ASSERT_NE(decoded.status().code(), absl::StatusCode::kInternal) << decoded.status();
      }
    }
  }
  std::cout << "mutants accepted: " << accepted << ", rejected: " << rejected << "\n";
}

// The decoders keep no shared state: concurrent decodes (including failing ones, whose libjpeg
// message lives in thread-local storage) give the same results as sequential ones.
TEST(ConcurrencyTest, ParallelDecodesMatchSequentialOnes) {
  const Rgb image = GradientImage(120, 90);
  const std::string jpeg = EncodeJpeg(image, 90, TJSAMP_420);
  const std::vector<std::string> inputs = {
      AddExifOrientation(jpeg, 6, true), EncodePngRgb(image), EncodeWebpLossy(image, 80),
      jpeg.substr(0, jpeg.size() / 2), EncodePngRgb(image).substr(0, 300)};
  DecodeOptions options;
  options.min_shorter_side = 40;
  std::vector<absl::StatusOr<DecodedImage>> expected;
  for (const std::string& input : inputs) expected.push_back(DecodeImage(input, options));

  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 25; ++round) {
        const size_t i = (round + t) % inputs.size();
        const absl::StatusOr<DecodedImage> got = DecodeImage(inputs[i], options);
        const bool same = got.ok() ? (expected[i].ok() && got->rgb == expected[i]->rgb)
                                   : got.status() == expected[i].status();
        if (!same) ++mismatches[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  EXPECT_FALSE(expected[3].ok());
  EXPECT_THAT(expected[3].status().message(), HasSubstr("truncated JPEG data"));
}

}  // namespace
}  // namespace cropshield::image
