// RenderHeatmapRgba and OverlayRgb: colours where seen, transparency / untouched photo where not,
// alpha blending arithmetic, argument checks.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/explain/render.h"
#include "server/image/preprocess.h"

namespace cropshield::explain {
namespace {

// 4x2 photo map: the left column is unseen, the rest carries assorted values.
PhotoMap SmallMap() {
  PhotoMap map;
  map.width = 4;
  map.height = 2;
  map.values = {0.0f, 0.0f,  0.5f,  1.0f,  //
                0.0f, 0.25f, 0.75f, 0.9f};
  map.seen = {0, 1, 1, 1,  //
              0, 1, 1, 1};
  return map;
}

std::vector<uint8_t> SmallPhoto() {
  std::vector<uint8_t> rgb(4 * 2 * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(17 + 29 * i);
  return rgb;
}

TEST(RenderHeatmapRgbaTest, ColoursWhereSeenTransparentElsewhere) {
  const PhotoMap map = SmallMap();
  for (Colormap colormap : {Colormap::kJet, Colormap::kTurbo, Colormap::kViridis}) {
    SCOPED_TRACE(ColormapName(colormap));
    const std::vector<uint8_t> rgba = RenderHeatmapRgba(map, colormap);
    ASSERT_EQ(rgba.size(), 4u * 2u * 4u);
    for (size_t i = 0; i < map.values.size(); ++i) {
      const uint8_t* px = &rgba[i * 4];
      if (map.seen[i] != 0) {
        const std::array<uint8_t, 3> c = ColormapLookup(colormap, map.values[i]);
        EXPECT_EQ(px[0], c[0]) << i;
        EXPECT_EQ(px[1], c[1]) << i;
        EXPECT_EQ(px[2], c[2]) << i;
        EXPECT_EQ(px[3], 255) << i;
      } else {
        EXPECT_EQ(px[0] | px[1] | px[2] | px[3], 0) << i;
      }
    }
  }
}

TEST(RenderHeatmapRgbaTest, MalformedMapGivesNothing) {
  PhotoMap map = SmallMap();
  map.seen.pop_back();
  EXPECT_TRUE(RenderHeatmapRgba(map, Colormap::kJet).empty());
  map = SmallMap();
  map.width = 0;
  EXPECT_TRUE(RenderHeatmapRgba(map, Colormap::kJet).empty());
  EXPECT_TRUE(RenderHeatmapRgba(PhotoMap(), Colormap::kJet).empty());
}

TEST(OverlayRgbTest, BlendsSeenPixelsAndKeepsUnseenOnes) {
  const PhotoMap map = SmallMap();
  const std::vector<uint8_t> photo = SmallPhoto();
  for (float alpha : {0.5f, 0.3f, 0.8f}) {
    SCOPED_TRACE(alpha);
    absl::StatusOr<std::vector<uint8_t>> out = OverlayRgb(photo, map, Colormap::kTurbo, alpha);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), photo.size());
    for (size_t i = 0; i < map.values.size(); ++i) {
      const std::array<uint8_t, 3> c = ColormapLookup(Colormap::kTurbo, map.values[i]);
      for (int k = 0; k < 3; ++k) {
        const int p = photo[i * 3 + k];
        const int got = (*out)[i * 3 + k];
        if (map.seen[i] == 0) {
          EXPECT_EQ(got, p) << "unseen pixel " << i;
          continue;
        }
        const double exact = (1.0 - alpha) * p + alpha * c[k];
        // The exact value is a multiple of 1/2 for alpha = 0.5: ties round up.
        if (alpha == 0.5f) {
          EXPECT_EQ(got, static_cast<int>(std::floor(exact + 0.5))) << i << "/" << k;
        } else {
          EXPECT_LE(std::abs(got - exact), 0.5 + 1e-3) << i << "/" << k;
        }
      }
    }
  }
}

TEST(OverlayRgbTest, HandComputedValues) {
  PhotoMap map;
  map.width = 2;
  map.height = 1;
  map.values = {1.0f, 0.0f};
  map.seen = {1, 1};
  const std::vector<uint8_t> photo = {100, 200, 0, 10, 20, 30};
  // viridis(1) = (253, 231, 37), viridis(0) = (68, 1, 84); alpha 0.25:
  // 0.75 * 100 + 0.25 * 253 = 138.25, 0.75 * 200 + 0.25 * 231 = 207.75, 0 + 9.25,
  // 7.5 + 17 = 24.5 (ties up: 25), 15 + 0.25 = 15.25, 22.5 + 21 = 43.5 (44).
  absl::StatusOr<std::vector<uint8_t>> out = OverlayRgb(photo, map, Colormap::kViridis, 0.25f);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, (std::vector<uint8_t>{138, 208, 9, 25, 15, 44}));
}

TEST(OverlayRgbTest, AlphaOneGivesTheHeatmapColours) {
  const PhotoMap map = SmallMap();
  const std::vector<uint8_t> photo = SmallPhoto();
  absl::StatusOr<std::vector<uint8_t>> out = OverlayRgb(photo, map, Colormap::kJet, 1.0f);
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<uint8_t> rgba = RenderHeatmapRgba(map, Colormap::kJet);
  for (size_t i = 0; i < map.values.size(); ++i) {
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ((*out)[i * 3 + k], map.seen[i] ? rgba[i * 4 + k] : photo[i * 3 + k]) << i;
    }
  }
}

TEST(OverlayRgbTest, UnseenDimScalesTheUnseenRegion) {
  const PhotoMap map = SmallMap();
  const std::vector<uint8_t> photo = SmallPhoto();
  absl::StatusOr<std::vector<uint8_t>> plain = OverlayRgb(photo, map, Colormap::kJet, 0.4f);
  absl::StatusOr<std::vector<uint8_t>> dimmed = OverlayRgb(photo, map, Colormap::kJet, 0.4f, 0.5f);
  absl::StatusOr<std::vector<uint8_t>> black = OverlayRgb(photo, map, Colormap::kJet, 0.4f, 0.0f);
  ASSERT_TRUE(plain.ok() && dimmed.ok() && black.ok());
  for (size_t i = 0; i < map.values.size(); ++i) {
    for (int k = 0; k < 3; ++k) {
      const size_t j = i * 3 + k;
      if (map.seen[i] != 0) {
        EXPECT_EQ((*dimmed)[j], (*plain)[j]) << "seen pixels are not dimmed";
      } else {
        EXPECT_EQ((*dimmed)[j], static_cast<int>(std::floor(photo[j] * 0.5 + 0.5))) << j;
        EXPECT_EQ((*black)[j], 0) << j;
      }
    }
  }
}

TEST(OverlayRgbTest, PlacedMapOnALandscapePhotoLeavesTheSidesAlone) {
  constexpr int kWidth = 160;
  constexpr int kHeight = 120;
  std::vector<float> cam(14 * 14);
  for (size_t i = 0; i < cam.size(); ++i) cam[i] = static_cast<float>(i % 14) / 13.0f;
  image::CropBox box;
  box.x = 20;
  box.width = 120;
  box.height = 120;
  absl::StatusOr<PhotoMap> map = PlaceOnPhoto(cam, 14, 14, box, kWidth, kHeight);
  ASSERT_TRUE(map.ok()) << map.status();
  std::vector<uint8_t> photo(kWidth * kHeight * 3);
  for (size_t i = 0; i < photo.size(); ++i) photo[i] = static_cast<uint8_t>(i * 7);
  absl::StatusOr<std::vector<uint8_t>> out = OverlayRgb(photo, *map, Colormap::kJet, 0.5f);
  ASSERT_TRUE(out.ok()) << out.status();
  int seen_changed = 0;
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      const size_t j = (static_cast<size_t>(y) * kWidth + x) * 3;
      const bool same = std::equal(photo.begin() + j, photo.begin() + j + 3, out->begin() + j);
      if (x < 20 || x >= 140) {
        ASSERT_TRUE(same) << x << "," << y;
      } else {
        seen_changed += same ? 0 : 1;
      }
    }
  }
  EXPECT_GT(seen_changed, 120 * 120 * 9 / 10) << "the crop box is blended";
}

TEST(OverlayRgbTest, RejectsBadArguments) {
  const PhotoMap map = SmallMap();
  const std::vector<uint8_t> photo = SmallPhoto();
  const float kNan = std::numeric_limits<float>::quiet_NaN();
  for (float alpha : {0.0f, -0.1f, 1.01f, kNan}) {
    EXPECT_EQ(OverlayRgb(photo, map, Colormap::kJet, alpha).status().code(),
              absl::StatusCode::kInvalidArgument)
        << alpha;
  }
  for (float dim : {-0.1f, 1.5f, kNan}) {
    EXPECT_EQ(OverlayRgb(photo, map, Colormap::kJet, 0.5f, dim).status().code(),
              absl::StatusCode::kInvalidArgument)
        << dim;
  }
  const std::vector<uint8_t> short_photo(photo.begin(), photo.end() - 1);
  EXPECT_EQ(OverlayRgb(short_photo, map, Colormap::kJet, 0.5f).status().code(),
            absl::StatusCode::kInvalidArgument);
  PhotoMap bad = map;
  bad.values.push_back(0.0f);
  EXPECT_EQ(OverlayRgb(photo, bad, Colormap::kJet, 0.5f).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cropshield::explain
