// EncodePng / EncodeJpeg: round trips through libpng's and TurboJPEG's decoders, argument checks.
#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/explain/render.h"
#include "server/image/preprocess.h"

namespace cropshield::explain {
namespace {

struct Decoded {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;
};

// libpng's simplified reader; `channels` picks PNG_FORMAT_RGB or PNG_FORMAT_RGBA.
Decoded DecodePngOrDie(const std::string& bytes, int channels) {
  png_image image = {};
  image.version = PNG_IMAGE_VERSION;
  Decoded out;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    ADD_FAILURE() << "png_image_begin_read_from_memory: " << image.message;
    return out;
  }
  image.format = channels == 4 ? PNG_FORMAT_RGBA : PNG_FORMAT_RGB;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr)) {
    ADD_FAILURE() << "png_image_finish_read: " << image.message;
    out.pixels.clear();
  }
  png_image_free(&image);
  return out;
}

// Reads the colour type byte of IHDR.
int PngColorType(const std::string& bytes) {
  return bytes.size() > 25 ? static_cast<uint8_t>(bytes[25]) : -1;
}

std::vector<uint8_t> NoiseImage(int width, int height, int channels) {
  std::vector<uint8_t> pixels(static_cast<size_t>(width) * height * channels);
  uint32_t state = 12345;
  for (uint8_t& p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  return pixels;
}

std::vector<uint8_t> SmoothRgb(int width, int height) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(255 * x / (width - 1));
      p[1] = static_cast<uint8_t>(255 * y / (height - 1));
      p[2] = static_cast<uint8_t>(128 + 100 * std::sin(0.05 * (x + y)));
    }
  }
  return rgb;
}

TEST(EncodePngTest, RgbRoundTripsExactly) {
  for (const auto& [w, h] : {std::pair{1, 1}, std::pair{37, 23}, std::pair{640, 480}}) {
    SCOPED_TRACE(::testing::Message() << w << "x" << h);
    const std::vector<uint8_t> pixels = NoiseImage(w, h, 3);
    absl::StatusOr<std::string> png = EncodePng(pixels, w, h, 3);
    ASSERT_TRUE(png.ok()) << png.status();
    ASSERT_GE(png->size(), 8u);
    EXPECT_EQ(png->substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_EQ(PngColorType(*png), PNG_COLOR_TYPE_RGB);
    const Decoded decoded = DecodePngOrDie(*png, 3);
    EXPECT_EQ(decoded.width, w);
    EXPECT_EQ(decoded.height, h);
    EXPECT_TRUE(decoded.pixels == pixels);
  }
}

TEST(EncodePngTest, RgbaRoundTripsExactly) {
  const std::vector<uint8_t> pixels = NoiseImage(101, 67, 4);
  absl::StatusOr<std::string> png = EncodePng(pixels, 101, 67, 4);
  ASSERT_TRUE(png.ok()) << png.status();
  EXPECT_EQ(PngColorType(*png), PNG_COLOR_TYPE_RGBA);
  const Decoded decoded = DecodePngOrDie(*png, 4);
  EXPECT_EQ(decoded.width, 101);
  EXPECT_EQ(decoded.height, 67);
  EXPECT_TRUE(decoded.pixels == pixels);
}

TEST(EncodePngTest, HeatmapRoundTripsAndCompresses) {
  std::vector<float> cam(14 * 14);
  for (int y = 0; y < 14; ++y) {
    for (int x = 0; x < 14; ++x) {
      cam[y * 14 + x] =
          static_cast<float>(std::exp(-((x - 9) * (x - 9) + (y - 5) * (y - 5)) / 8.0));
    }
  }
  image::CropBox box;
  box.x = 100;
  box.width = 600;
  box.height = 600;
  absl::StatusOr<PhotoMap> map = PlaceOnPhoto(cam, 14, 14, box, 800, 600);
  ASSERT_TRUE(map.ok()) << map.status();
  const std::vector<uint8_t> rgba = RenderHeatmapRgba(*map, Colormap::kTurbo);
  absl::StatusOr<std::string> png = EncodePng(rgba, 800, 600, 4);
  ASSERT_TRUE(png.ok()) << png.status();
  const Decoded decoded = DecodePngOrDie(*png, 4);
  EXPECT_TRUE(decoded.pixels == rgba);
  EXPECT_LT(png->size(), rgba.size() / 10) << "heatmaps are smooth: expect at least 10:1";
}

TEST(EncodePngTest, RejectsBadArguments) {
  const std::vector<uint8_t> pixels(4 * 4 * 4);
  for (int channels : {0, 1, 2, 5}) {
    EXPECT_EQ(EncodePng(pixels, 4, 4, channels).status().code(), absl::StatusCode::kInvalidArgument)
        << channels;
  }
  EXPECT_EQ(EncodePng(pixels, 4, 4, 3).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(pixels, 0, 4, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng(pixels, 4, -4, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng({}, 0, 0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodePng({}, 1 << 15, 1 << 14, 4).status().code(),
            absl::StatusCode::kInvalidArgument);  // over kMaxRenderPixels
}

TEST(EncodePngTest, VeryWideImagesAreNotLimitedByLibpngDefaults) {
  // libpng refuses more than 1000000 pixels per side unless told otherwise.
  constexpr int kWidth = 1'100'000;
  const std::vector<uint8_t> pixels = NoiseImage(kWidth, 2, 3);
  absl::StatusOr<std::string> png = EncodePng(pixels, kWidth, 2, 3);
  ASSERT_TRUE(png.ok()) << png.status();
  // (libpng's simplified reader has the same limit: read the IHDR fields directly.)
  ASSERT_GT(png->size(), 24u);
  auto be32 = [&](size_t at) {
    const auto* p = reinterpret_cast<const uint8_t*>(png->data()) + at;
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  };
  EXPECT_EQ(png->substr(12, 4), "IHDR");
  EXPECT_EQ(be32(16), static_cast<uint32_t>(kWidth));
  EXPECT_EQ(be32(20), 2u);
}

TEST(EncodeJpegTest, RoundTripsApproximately) {
  constexpr int kWidth = 321;
  constexpr int kHeight = 203;
  const std::vector<uint8_t> rgb = SmoothRgb(kWidth, kHeight);
  absl::StatusOr<std::string> jpeg = EncodeJpeg(rgb, kWidth, kHeight, 90);
  ASSERT_TRUE(jpeg.ok()) << jpeg.status();
  ASSERT_GE(jpeg->size(), 4u);
  EXPECT_EQ(static_cast<uint8_t>((*jpeg)[0]), 0xFF);
  EXPECT_EQ(static_cast<uint8_t>((*jpeg)[1]), 0xD8);
  EXPECT_EQ(static_cast<uint8_t>((*jpeg)[jpeg->size() - 2]), 0xFF);
  EXPECT_EQ(static_cast<uint8_t>((*jpeg)[jpeg->size() - 1]), 0xD9);

  std::unique_ptr<void, decltype(&tjDestroy)> tj(tjInitDecompress(), &tjDestroy);
  ASSERT_NE(tj, nullptr);
  auto* data = reinterpret_cast<const unsigned char*>(jpeg->data());
  int width = 0, height = 0, subsampling = -1, colorspace = -1;
  ASSERT_EQ(
      tjDecompressHeader3(tj.get(), data, jpeg->size(), &width, &height, &subsampling, &colorspace),
      0)
      << tjGetErrorStr2(tj.get());
  EXPECT_EQ(width, kWidth);
  EXPECT_EQ(height, kHeight);
  EXPECT_EQ(subsampling, TJSAMP_420);
  std::vector<uint8_t> decoded(rgb.size());
  ASSERT_EQ(
      tjDecompress2(tj.get(), data, jpeg->size(), decoded.data(), kWidth, 0, kHeight, TJPF_RGB, 0),
      0)
      << tjGetErrorStr2(tj.get());
  double total = 0;
  int worst = 0;
  for (size_t i = 0; i < rgb.size(); ++i) {
    const int diff = std::abs(int{decoded[i]} - int{rgb[i]});
    total += diff;
    worst = std::max(worst, diff);
  }
  EXPECT_LT(total / rgb.size(), 2.0);
  EXPECT_LT(worst, 40);

  // Lower quality, smaller file.
  absl::StatusOr<std::string> small = EncodeJpeg(rgb, kWidth, kHeight, 20);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_LT(small->size(), jpeg->size());
}

TEST(EncodeJpegTest, RejectsBadArguments) {
  const std::vector<uint8_t> rgb(8 * 8 * 3);
  EXPECT_EQ(EncodeJpeg(rgb, 8, 8, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(rgb, 8, 8, 101).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(rgb, 8, 7, 90).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeJpeg(rgb, 0, 8, 90).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<uint8_t> wide(70000 * 1 * 3);
  EXPECT_EQ(EncodeJpeg(wide, 70000, 1, 90).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(EncodeJpeg(rgb, 8, 8, 1).ok());
  EXPECT_TRUE(EncodeJpeg(rgb, 8, 8, 100).ok());
}

}  // namespace
}  // namespace cropshield::explain
