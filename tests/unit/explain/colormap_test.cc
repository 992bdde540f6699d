// Colour maps: published endpoint and midpoint colours, agreement with OpenCV's applyColorMap,
// clamping, viridis' monotone luminance, names.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/explain/render.h"

namespace cropshield::explain {
namespace {

using Rgb = std::array<uint8_t, 3>;

constexpr Colormap kAll[] = {Colormap::kJet, Colormap::kTurbo, Colormap::kViridis};

void ExpectNear(const Rgb& actual, const Rgb& expected, int tolerance) {
  for (int c = 0; c < 3; ++c) {
    EXPECT_LE(std::abs(actual[c] - expected[c]), tolerance)
        << "channel " << c << ": got (" << int{actual[0]} << ", " << int{actual[1]} << ", "
        << int{actual[2]} << "), want (" << int{expected[0]} << ", " << int{expected[1]} << ", "
        << int{expected[2]} << ") within " << tolerance;
  }
}

TEST(ColormapTest, JetEndpointsAndMiddle) {
  ExpectNear(ColormapLookup(Colormap::kJet, 0.0f), {0, 0, 128}, 1);      // dark blue
  ExpectNear(ColormapLookup(Colormap::kJet, 1.0f), {128, 0, 0}, 1);      // dark red
  ExpectNear(ColormapLookup(Colormap::kJet, 0.5f), {128, 255, 128}, 3);  // green-ish middle
  ExpectNear(ColormapLookup(Colormap::kJet, 0.125f), {0, 0, 255}, 2);    // pure blue at 1/8
  ExpectNear(ColormapLookup(Colormap::kJet, 0.375f), {0, 255, 255}, 3);  // cyan at 3/8
  ExpectNear(ColormapLookup(Colormap::kJet, 0.625f), {255, 255, 0}, 3);  // yellow at 5/8
  ExpectNear(ColormapLookup(Colormap::kJet, 0.875f), {255, 0, 0}, 2);    // red at 7/8
}

TEST(ColormapTest, TurboEndpointsAndMiddle) {
  ExpectNear(ColormapLookup(Colormap::kTurbo, 0.0f), {48, 18, 59}, 1);
  ExpectNear(ColormapLookup(Colormap::kTurbo, 1.0f), {122, 4, 3}, 1);
  // round(0.5 * 255) = 128: entry 128 of Google's table.
  ExpectNear(ColormapLookup(Colormap::kTurbo, 0.5f), {164, 252, 60}, 2);
}

TEST(ColormapTest, ViridisEndpointsAndMiddle) {
  ExpectNear(ColormapLookup(Colormap::kViridis, 0.0f), {68, 1, 84}, 0);
  ExpectNear(ColormapLookup(Colormap::kViridis, 1.0f), {253, 231, 37}, 0);
  // matplotlib: viridis(0.5) = (0.127568, 0.566949, 0.550556).
  ExpectNear(ColormapLookup(Colormap::kViridis, 0.5f), {33, 145, 140}, 1);
}

// CIE L* of an sRGB colour (D65).
double Lightness(const Rgb& c) {
  auto linear = [](uint8_t v) {
    const double s = v / 255.0;
    return s <= 0.04045 ? s / 12.92 : std::pow((s + 0.055) / 1.055, 2.4);
  };
  const double y = 0.2126 * linear(c[0]) + 0.7152 * linear(c[1]) + 0.0722 * linear(c[2]);
  return y > 216.0 / 24389.0 ? 116.0 * std::cbrt(y) - 16.0 : y * 24389.0 / 27.0;
}

TEST(ColormapTest, ViridisLightnessIsMonotone) {
  // Viridis' lightness rises steadily, from L* 15 to 91. Rounding to 8 bits leaves two adjacent
  // entries 0.03 apart the wrong way round, so single steps get that much slack; steps of four
  // entries must rise strictly.
  std::vector<double> lightness;
  for (int i = 0; i <= 255; ++i)
    lightness.push_back(Lightness(ColormapLookup(Colormap::kViridis, i / 255.0f)));
  for (int i = 1; i <= 255; ++i) {
    EXPECT_GT(lightness[i], lightness[i - 1] - 0.05) << "at entry " << i;
    if (i >= 4) {
      EXPECT_GT(lightness[i], lightness[i - 4]) << "at entry " << i;
    }
  }
  EXPECT_NEAR(lightness.front(), 14.9, 0.5);
  EXPECT_NEAR(lightness.back(), 90.9, 0.5);
}

TEST(ColormapTest, ClampsOutOfRangeAndNan) {
  for (Colormap m : kAll) {
    SCOPED_TRACE(ColormapName(m));
    EXPECT_EQ(ColormapLookup(m, -0.5f), ColormapLookup(m, 0.0f));
    EXPECT_EQ(ColormapLookup(m, -std::numeric_limits<float>::infinity()), ColormapLookup(m, 0.0f));
    EXPECT_EQ(ColormapLookup(m, std::numeric_limits<float>::quiet_NaN()), ColormapLookup(m, 0.0f));
    EXPECT_EQ(ColormapLookup(m, 1.5f), ColormapLookup(m, 1.0f));
    EXPECT_EQ(ColormapLookup(m, std::numeric_limits<float>::infinity()), ColormapLookup(m, 1.0f));
  }
}

TEST(ColormapTest, LookupRoundsToTheNearestTableEntry) {
  for (Colormap m : kAll) {
    SCOPED_TRACE(ColormapName(m));
    const auto& table = ColormapTable(m);
    for (int i = 0; i < 256; ++i) {
      ASSERT_EQ(ColormapLookup(m, i / 255.0f), table[i]) << i;
      if (i < 255) {
        ASSERT_EQ(ColormapLookup(m, (i + 0.49f) / 255.0f), table[i]) << i;
      }
      if (i > 0) {
        ASSERT_EQ(ColormapLookup(m, (i - 0.49f) / 255.0f), table[i]) << i;
      }
    }
  }
}

// OpenCV's applyColorMap on an 8-bit ramp (BGR out) is the reference for all three tables.
TEST(ColormapTest, AgreesWithOpenCvApplyColorMap) {
  cv::Mat ramp(1, 256, CV_8UC1);
  for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i);
  const struct {
    Colormap ours;
    int opencv;
    int tolerance;
  } cases[] = {
      // OpenCV tabulates jet in float and rounds the exact .5 values of the trapezoids either way.
      {Colormap::kJet, cv::COLORMAP_JET, 1},
      {Colormap::kTurbo, cv::COLORMAP_TURBO, 0},
      {Colormap::kViridis, cv::COLORMAP_VIRIDIS, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(ColormapName(c.ours));
    cv::Mat bgr;
    try {
      cv::applyColorMap(ramp, bgr, c.opencv);
    } catch (const cv::Exception& e) {
      FAIL() << "cv::applyColorMap: " << e.what();
    }
    ASSERT_EQ(bgr.type(), CV_8UC3);
    for (int i = 0; i < 256; ++i) {
      const cv::Vec3b v = bgr.at<cv::Vec3b>(0, i);
      SCOPED_TRACE(i);
      ExpectNear(ColormapLookup(c.ours, i / 255.0f), {v[2], v[1], v[0]}, c.tolerance);
    }
  }
}

TEST(ColormapTest, NamesRoundTrip) {
  for (Colormap m : kAll) {
    absl::StatusOr<Colormap> parsed = ColormapFromName(ColormapName(m));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, m);
  }
  EXPECT_EQ(ColormapFromName("Turbo").value_or(Colormap::kJet), Colormap::kTurbo);
  EXPECT_EQ(ColormapFromName("magma").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ColormapFromName("").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cropshield::explain
