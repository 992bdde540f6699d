// Parity of DecodeImage + Preprocess with the Python training pipeline: torchvision
// Resize(256) -> CenterCrop(224) -> ToTensor -> Normalize on the PIL-decoded image. The reference
// tensors are computed at test time by torchvision_reference.py (run with CROPSHIELD_PYTHON).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "gtest/gtest.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"
#include "tests/unit/image/test_images.h"

#ifndef CROPSHIELD_PYTHON
#define CROPSHIELD_PYTHON "/usr/bin/python3"
#endif
#ifndef CROPSHIELD_PARITY_SCRIPT
#error "CROPSHIELD_PARITY_SCRIPT must name torchvision_reference.py"
#endif

namespace cropshield::image {
namespace {

// The product requirement: mean absolute difference of the normalised tensor.
constexpr double kMaxMeanAbsDiff = 0.06;

const char* const kSizes[] = {"1600x1200", "1200x1600", "640x480", "300x500",
                              "256x256",   "257x300",   "200x150", "1000x333"};

// Removes the directory (and the generated files) when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "cropshield_image_parity_XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<float> ReadFloats(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> values(3 * 224 * 224);
  in.read(reinterpret_cast<char*>(values.data()), values.size() * sizeof(float));
  if (!in || in.peek() != EOF) values.clear();
  return values;
}

// One test for all images: generating the references costs a Python + torch start-up, which
// CTest would otherwise pay once per test case.
TEST(TorchvisionParityTest, PhotoLikeImagesWithinBound) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp failed";
  std::string command =
      absl::StrCat("'", CROPSHIELD_PYTHON, "' '", CROPSHIELD_PARITY_SCRIPT, "' '", dir.path(), "'");
  for (const char* size : kSizes) absl::StrAppend(&command, " ", size);
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  for (const char* size : kSizes) {
    for (const char* ext : {"jpg", "png"}) {
      const std::string path = absl::StrCat(dir.path(), "/", size, ".", ext);
      SCOPED_TRACE(path);
      const std::string bytes = test_images::ReadFileOrDie(path);
      const std::vector<float> reference = ReadFloats(path + ".f32");
      ASSERT_EQ(reference.size(), 3u * 224 * 224) << "bad reference tensor";

      // The serving configuration: DCT-domain downscaling to just above the resize target.
      DecodeOptions options;
      options.min_shorter_side = 256;
      absl::StatusOr<DecodedImage> image = DecodeImage(bytes, options);
      ASSERT_TRUE(image.ok()) << image.status();
      std::vector<float> tensor(3 * 224 * 224);
      ASSERT_TRUE(Preprocess(*image, {}, absl::MakeSpan(tensor), nullptr).ok());

      double sum = 0;
      double max_diff = 0;
      for (size_t i = 0; i < tensor.size(); ++i) {
        const double d = std::abs(double{tensor[i]} - double{reference[i]});
        sum += d;
        max_diff = std::max(max_diff, d);
      }
      const double mad = sum / static_cast<double>(tensor.size());
      const std::string report = absl::StrFormat(
          "parity %-9s %-3s decoded %4dx%-4d (DCT scale %d/%d): mean abs diff %.4f, max %.3g", size,
          ext, image->width, image->height, image->scale_num, image->scale_denom, mad, max_diff);
      std::cout << report << std::endl;
      RecordProperty(absl::StrCat("mad_", size, "_", ext), absl::StrFormat("%.5f", mad));
      EXPECT_LE(mad, kMaxMeanAbsDiff) << report;
      if (image->scale_num == image->scale_denom) {
        // Without DCT scaling the decoders are the same libraries as PIL's and Preprocess uses
        // PIL's fixed-point resampling: anything but float rounding noise is a regression.
        EXPECT_LE(max_diff, 1e-6) << report;
      }
    }
  }
}

}  // namespace
}  // namespace cropshield::image
