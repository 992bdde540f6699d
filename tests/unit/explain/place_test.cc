// PlaceOnPhoto: geometry of the crop box on the photo and half-pixel bilinear resampling.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/explain/render.h"
#include "server/image/preprocess.h"

namespace cropshield::explain {
namespace {

using ::testing::HasSubstr;

image::CropBox Box(double x, double y, double width, double height) {
  image::CropBox box;
  box.x = x;
  box.y = y;
  box.width = width;
  box.height = height;
  return box;
}

float ValueAt(const PhotoMap& map, int x, int y) {
  return map.values[static_cast<size_t>(y) * map.width + x];
}
bool SeenAt(const PhotoMap& map, int x, int y) {
  return map.seen[static_cast<size_t>(y) * map.width + x] != 0;
}

// The documented formula, evaluated pixel by pixel in double precision with no precomputation:
// the reference the fast implementation is compared with.
struct Reference {
  std::vector<double> values;
  std::vector<uint8_t> seen;
};

double Sample1d(double u, int size, int* i0, int* i1) {
  u = std::max(u, 0.0);
  *i0 = std::min(static_cast<int>(std::floor(u)), size - 1);
  *i1 = std::min(*i0 + 1, size - 1);
  return *i1 == *i0 ? 0.0 : u - *i0;
}

Reference NaiveReference(const std::vector<float>& map, int mw, int mh, const image::CropBox& box,
                         int pw, int ph) {
  Reference ref;
  ref.values.assign(static_cast<size_t>(pw) * ph, 0.0);
  ref.seen.assign(static_cast<size_t>(pw) * ph, 0);
  for (int py = 0; py < ph; ++py) {
    for (int px = 0; px < pw; ++px) {
      const double cx = px + 0.5;
      const double cy = py + 0.5;
      if (cx < box.x || cx >= box.x + box.width || cy < box.y || cy >= box.y + box.height) {
        continue;
      }
      int x0, x1, y0, y1;
      const double wx = Sample1d((cx - box.x) / box.width * mw - 0.5, mw, &x0, &x1);
      const double wy = Sample1d((cy - box.y) / box.height * mh - 0.5, mh, &y0, &y1);
      auto m = [&](int x, int y) { return static_cast<double>(map[y * mw + x]); };
      const size_t i = static_cast<size_t>(py) * pw + px;
      ref.values[i] = (1 - wy) * ((1 - wx) * m(x0, y0) + wx * m(x1, y0)) +
                      wy * ((1 - wx) * m(x0, y1) + wx * m(x1, y1));
      ref.seen[i] = 1;
    }
  }
  return ref;
}

std::vector<float> PseudoRandomMap(int w, int h, uint32_t seed) {
  std::vector<float> map(static_cast<size_t>(w) * h);
  uint32_t state = seed;
  for (float& v : map) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
  }
  return map;
}

TEST(PlaceOnPhotoTest, ConstantMapFillsExactlyTheCenterCropOfALandscapePhoto) {
  const std::vector<float> map(14 * 14, 0.7f);
  absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, 14, 14, Box(200, 0, 1200, 1200), 1600, 1200);
  ASSERT_TRUE(placed.ok()) << placed.status();
  ASSERT_EQ(placed->width, 1600);
  ASSERT_EQ(placed->height, 1200);
  ASSERT_EQ(placed->values.size(), 1600u * 1200u);
  ASSERT_EQ(placed->seen.size(), 1600u * 1200u);

  EXPECT_FALSE(SeenAt(*placed, 199, 0));
  EXPECT_TRUE(SeenAt(*placed, 200, 0));
  EXPECT_TRUE(SeenAt(*placed, 1399, 1199));
  EXPECT_FALSE(SeenAt(*placed, 1400, 1199));
  int mismatches = 0;
  for (int y = 0; y < 1200; ++y) {
    for (int x = 0; x < 1600; ++x) {
      const bool inside = x >= 200 && x < 1400;
      const float expected = inside ? 0.7f : 0.0f;
      if (SeenAt(*placed, x, y) != inside || ValueAt(*placed, x, y) != expected) {
        if (++mismatches <= 5) {
          ADD_FAILURE() << "pixel (" << x << ", " << y << "): seen=" << SeenAt(*placed, x, y)
                        << " value=" << ValueAt(*placed, x, y);
        }
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(PlaceOnPhotoTest, ConstantMapOnAPortraitPhoto) {
  const std::vector<float> map(7 * 7, 1.0f);
  absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, 7, 7, Box(0, 200, 1200, 1200), 1200, 1600);
  ASSERT_TRUE(placed.ok()) << placed.status();
  for (int y : {0, 199, 200, 1000, 1399, 1400, 1599}) {
    const bool inside = y >= 200 && y < 1400;
    for (int x : {0, 600, 1199}) {
      EXPECT_EQ(SeenAt(*placed, x, y), inside) << x << "," << y;
      EXPECT_EQ(ValueAt(*placed, x, y), inside ? 1.0f : 0.0f) << x << "," << y;
    }
  }
}

TEST(PlaceOnPhotoTest, SingleHotCellLandsOnItsCellOfTheBox) {
  constexpr int kSide = 14;
  constexpr int kHotX = 9;
  constexpr int kHotY = 4;
  std::vector<float> map(kSide * kSide, 0.0f);
  map[kHotY * kSide + kHotX] = 1.0f;
  const image::CropBox box = Box(200, 0, 1200, 1200);
  absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, kSide, kSide, box, 1600, 1200);
  ASSERT_TRUE(placed.ok()) << placed.status();

  int best_x = -1;
  int best_y = -1;
  float best = -1;
  for (int y = 0; y < placed->height; ++y) {
    for (int x = 0; x < placed->width; ++x) {
      if (ValueAt(*placed, x, y) > best) {
        best = ValueAt(*placed, x, y);
        best_x = x;
        best_y = y;
      }
    }
  }
  const double cell = 1200.0 / kSide;
  EXPECT_GE(best_x + 0.5, box.x + kHotX * cell);
  EXPECT_LT(best_x + 0.5, box.x + (kHotX + 1) * cell);
  EXPECT_GE(best_y + 0.5, box.y + kHotY * cell);
  EXPECT_LT(best_y + 0.5, box.y + (kHotY + 1) * cell);
  // The cell centre is at photo x = 200 + 9.5 * cell = 1014.29: pixel 1013's or 1014's centre is
  // within half a pixel of it, where the value is within 0.5/cell of 1.
  EXPECT_GT(best, 1.0f - 1.0f / static_cast<float>(cell));
  EXPECT_TRUE(best_x == 1013 || best_x == 1014) << best_x;
  // Support: one cell around the hot cell's centre, no further.
  const double centre_x = box.x + (kHotX + 0.5) * cell;
  const double centre_y = box.y + (kHotY + 0.5) * cell;
  for (int y = 0; y < placed->height; y += 7) {
    for (int x = 0; x < placed->width; x += 7) {
      if (std::abs(x + 0.5 - centre_x) >= cell || std::abs(y + 0.5 - centre_y) >= cell) {
        ASSERT_EQ(ValueAt(*placed, x, y), 0.0f) << x << "," << y;
      }
    }
  }
}

TEST(PlaceOnPhotoTest, TwoByTwoToFourByFourHasQuarterWeights) {
  // torch.nn.functional.interpolate(size=(4, 4), mode="bilinear", align_corners=False): along
  // each axis the output samples source positions -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped
  // to 1), i.e. weights (1, 0), (3/4, 1/4), (1/4, 3/4), (0, 1).
  const std::vector<float> map = {0.0f, 0.4f,  //
                                  0.8f, 1.0f};
  const double expected[4][4] = {{0.0, 0.1, 0.3, 0.4},
                                 {0.2, 0.2875, 0.4625, 0.55},
                                 {0.6, 0.6625, 0.7875, 0.85},
                                 {0.8, 0.85, 0.95, 1.0}};
  absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, 2, 2, Box(0, 0, 4, 4), 4, 4);
  ASSERT_TRUE(placed.ok()) << placed.status();
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 4; ++x) {
      EXPECT_NEAR(ValueAt(*placed, x, y), expected[y][x], 1e-6) << x << "," << y;
      EXPECT_TRUE(SeenAt(*placed, x, y));
    }
  }
}

TEST(PlaceOnPhotoTest, MatchesNaiveReferenceOnFractionalAndOversizedBoxes) {
  struct Case {
    int mw, mh;
    image::CropBox box;
    int pw, ph;
  };
  const Case cases[] = {
      {14, 14, Box(200, 0, 1200, 1200), 1600, 1200},  // the usual center crop
      {7, 5, Box(37.25, -12.5, 233.3, 180.7), 300, 200},
      {7, 7, Box(-50.5, -30.25, 400.75, 260.5), 300, 200},  // box larger than the photo
      {3, 4, Box(250.2, 150.9, 100, 100), 300, 200},        // partly off the photo
      {14, 14, Box(16.4, 16.6, 223.2, 223.2), 256, 256},
      {1, 1, Box(10, 10, 20, 20), 40, 40},
      {5, 1, Box(0, 0, 13, 3), 13, 3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message()
                 << c.mw << "x" << c.mh << " map, box (" << c.box.x << ", " << c.box.y << ", "
                 << c.box.width << ", " << c.box.height << ") on " << c.pw << "x" << c.ph);
    const std::vector<float> map = PseudoRandomMap(c.mw, c.mh, c.mw * 31 + c.pw);
    absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, c.mw, c.mh, c.box, c.pw, c.ph);
    ASSERT_TRUE(placed.ok()) << placed.status();
    const Reference ref = NaiveReference(map, c.mw, c.mh, c.box, c.pw, c.ph);
    int seen = 0;
    double max_diff = 0;
    for (size_t i = 0; i < ref.values.size(); ++i) {
      ASSERT_EQ(placed->seen[i], ref.seen[i]) << "pixel " << i % c.pw << "," << i / c.pw;
      seen += ref.seen[i];
      max_diff = std::max(max_diff, std::abs(placed->values[i] - ref.values[i]));
    }
    EXPECT_GT(seen, 0);
    EXPECT_LT(max_diff, 1e-5);
  }
}

TEST(PlaceOnPhotoTest, BoxEdgesFollowPixelCentres) {
  const std::vector<float> map(4, 0.5f);
  // Centres 10.5 and 11.5 are in [10.4, 11.6); 9.5 and 12.5 are not.
  absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, 2, 2, Box(10.4, 10.4, 1.2, 1.2), 20, 20);
  ASSERT_TRUE(placed.ok()) << placed.status();
  int seen = 0;
  for (uint8_t s : placed->seen) seen += s;
  EXPECT_EQ(seen, 4);
  EXPECT_TRUE(SeenAt(*placed, 10, 10));
  EXPECT_TRUE(SeenAt(*placed, 11, 11));
  // A box that contains no pixel centre is valid and sees nothing.
  placed = PlaceOnPhoto(map, 2, 2, Box(10.6, 10.6, 0.8, 0.8), 20, 20);
  ASSERT_TRUE(placed.ok()) << placed.status();
  for (size_t i = 0; i < placed->seen.size(); ++i) {
    ASSERT_EQ(placed->seen[i], 0);
    ASSERT_EQ(placed->values[i], 0.0f);
  }
  // So is one entirely off the photo.
  placed = PlaceOnPhoto(map, 2, 2, Box(-100, 5, 50, 5), 20, 20);
  ASSERT_TRUE(placed.ok()) << placed.status();
  for (uint8_t s : placed->seen) ASSERT_EQ(s, 0);
}

TEST(PlaceOnPhotoTest, ValuesAreClampedToUnitRange) {
  const std::vector<float> map = {-0.5f, 1.5f, 2.0f, -3.0f};
  absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, 2, 2, Box(0, 0, 8, 8), 8, 8);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(ValueAt(*placed, 0, 0), 0.0f);
  EXPECT_EQ(ValueAt(*placed, 7, 0), 1.0f);
  for (float v : placed->values) {
    ASSERT_GE(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
}

TEST(PlaceOnPhotoTest, RejectsBadArguments) {
  const std::vector<float> map(16, 0.5f);
  const image::CropBox box = Box(0, 0, 10, 10);
  const double kNan = std::numeric_limits<double>::quiet_NaN();
  const double kInf = std::numeric_limits<double>::infinity();
  auto expect_invalid = [](const absl::StatusOr<PhotoMap>& result, const char* what) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(what));
  };
  expect_invalid(PlaceOnPhoto(map, 0, 16, box, 10, 10), "map size");
  expect_invalid(PlaceOnPhoto(map, 4, -4, box, 10, 10), "map size");
  expect_invalid(PlaceOnPhoto(map, 4, 3, box, 10, 10), "map has 16 values");
  expect_invalid(PlaceOnPhoto({}, 1, 1, box, 10, 10), "map has 0 values");
  expect_invalid(PlaceOnPhoto(map, 4, 4, box, 0, 10), "photo size");
  expect_invalid(PlaceOnPhoto(map, 4, 4, box, 10, -1), "photo size");
  expect_invalid(PlaceOnPhoto(map, 4, 4, box, 1 << 20, 1 << 20), "over the limit");
  expect_invalid(PlaceOnPhoto(map, 4, 4, Box(0, 0, 0, 10), 10, 10), "crop box");
  expect_invalid(PlaceOnPhoto(map, 4, 4, Box(0, 0, 10, -1), 10, 10), "crop box");
  expect_invalid(PlaceOnPhoto(map, 4, 4, Box(kNan, 0, 10, 10), 10, 10), "crop box");
  expect_invalid(PlaceOnPhoto(map, 4, 4, Box(0, 0, kInf, 10), 10, 10), "crop box");
  expect_invalid(PlaceOnPhoto(map, 4, 4, Box(0, 0, 10, kNan), 10, 10), "crop box");
  std::vector<float> bad = map;
  bad[6] = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(PlaceOnPhoto(bad, 4, 4, box, 10, 10), "map value at (2, 1) is not finite");
  bad[6] = std::numeric_limits<float>::infinity();
  expect_invalid(PlaceOnPhoto(bad, 4, 4, box, 10, 10), "not finite");
}

}  // namespace
}  // namespace cropshield::explain
