// Parity of DecodeImage on CMYK and YCCK JPEGs with PIL: Image.open(f) (EXIF-transposed)
// .convert("RGB"), computed at test time by cmyk_reference.py (run with CROPSHIELD_PYTHON), which
// also writes PIL's own CMYK JPEGs (Adobe, inverted). The YCCK one is TurboJPEG's, written here.
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "server/image/decode.h"
#include "tests/testing/temp_dir.h"
#include "tests/unit/image/test_images.h"

#ifndef CROPSHIELD_PYTHON
#define CROPSHIELD_PYTHON "/usr/bin/python3"
#endif
#ifndef CROPSHIELD_CMYK_SCRIPT
#error "CROPSHIELD_CMYK_SCRIPT must name cmyk_reference.py"
#endif

namespace cropshield::image {
namespace {

// Measured (Debian bookworm, libjpeg-turbo 2.1.5, Pillow 9.4, 2026-12): the same IDCT and
// upsampling as PIL and PIL's integer CMYK -> RGB arithmetic give a mean absolute difference of 0
// and a maximum of 0 levels on all four files. The bounds leave room for another libjpeg-turbo
// build's rounding; ignoring the Adobe inversion would differ by 129 levels on average.
constexpr double kMaxMeanAbsDiff = 0.5;  // 8-bit levels
constexpr int kMaxAbsDiff = 8;

struct Reference {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

// "WIDTH HEIGHT\n" then width*height*3 bytes (cmyk_reference.py).
Reference ReadReference(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Reference reference;
  in >> reference.width >> reference.height;
  in.get();
  reference.rgb.resize(static_cast<size_t>(reference.width) * reference.height * 3);
  in.read(reinterpret_cast<char*>(reference.rgb.data()),
          static_cast<std::streamsize>(reference.rgb.size()));
  if (!in || in.peek() != EOF) reference.rgb.clear();
  return reference;
}

// A YCCK JPEG (TurboJPEG from CMYK samples) with ink gradients in all four channels.
void WriteYcckJpeg(const std::string& path) {
  constexpr int kWidth = 200;
  constexpr int kHeight = 120;
  std::vector<uint8_t> stored(kWidth * kHeight * 4);
  for (int y = 0; y < kHeight; ++y) {
    for (int x = 0; x < kWidth; ++x) {
      uint8_t* p = &stored[(y * kWidth + x) * 4];
      p[0] = static_cast<uint8_t>(255 - x);
      p[1] = static_cast<uint8_t>(255 - 2 * y);
      p[2] = static_cast<uint8_t>(128 + (x - y) / 2);
      p[3] = static_cast<uint8_t>(255 - (x + y) / 8);
    }
  }
  std::ofstream(path, std::ios::binary)
      << test_images::EncodeJpegCmyk(kWidth, kHeight, stored, 92, TJSAMP_420);
}

TEST(CmykParityTest, CmykAndYcckJpegsMatchPilConvertRgb) {
  ::cropshield::testing::TempDir dir("cropshield_cmyk_parity");
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp failed";
  WriteYcckJpeg(dir.path() + "/ycck_200x120.jpg");
  const std::string command =
      absl::StrCat("'", CROPSHIELD_PYTHON, "' '", CROPSHIELD_CMYK_SCRIPT, "' '", dir.path(), "'");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  int compared = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    const std::string path = entry.path().string();
    if (entry.path().extension() != ".jpg") continue;
    SCOPED_TRACE(path);
    const Reference reference = ReadReference(path + ".rgb");
    ASSERT_FALSE(reference.rgb.empty()) << "bad reference";
    absl::StatusOr<DecodedImage> decoded = DecodeImage(test_images::ReadFileOrDie(path), {});
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    ASSERT_EQ(decoded->width, reference.width);
    ASSERT_EQ(decoded->height, reference.height);
    double sum = 0;
    int max = 0;
    for (size_t i = 0; i < reference.rgb.size(); ++i) {
      const int d = std::abs(int{decoded->rgb[i]} - int{reference.rgb[i]});
      sum += d;
      max = std::max(max, d);
    }
    const double mean = sum / static_cast<double>(reference.rgb.size());
    std::cout << absl::StrFormat("cmyk parity %s %dx%d: mean abs diff %.4f, max %d levels\n",
                                 entry.path().filename().string(), reference.width,
                                 reference.height, mean, max);
    EXPECT_LE(mean, kMaxMeanAbsDiff);
    EXPECT_LE(max, kMaxAbsDiff);
    ++compared;
  }
  EXPECT_EQ(compared, 4);  // 2 sizes, EXIF orientation 6, YCCK
}

}  // namespace
}  // namespace cropshield::image
