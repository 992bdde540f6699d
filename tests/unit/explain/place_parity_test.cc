// Parity of PlaceOnPhoto with torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False) onto the crop box. The references are computed at test time by
// torch_interpolate_reference.py (run with CROPSHIELD_PYTHON); integer boxes only, since torch
// resizes to whole pixels.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/explain/render.h"
#include "server/image/preprocess.h"
#include "tests/testing/temp_dir.h"

#ifndef CROPSHIELD_PYTHON
#define CROPSHIELD_PYTHON "/usr/bin/python3"
#endif
#ifndef CROPSHIELD_INTERPOLATE_SCRIPT
#error "CROPSHIELD_INTERPOLATE_SCRIPT must name torch_interpolate_reference.py"
#endif

namespace cropshield::explain {
namespace {

struct Case {
  int mw, mh, pw, ph, bx, by, bw, bh;
};

const Case kCases[] = {
    {14, 14, 1600, 1200, 200, 0, 1200, 1200},  // landscape photo, center crop
    {7, 7, 1200, 1600, 0, 200, 1200, 1200},    // portrait
    {14, 14, 224, 224, 0, 0, 224, 224},        // box == photo
    {14, 14, 256, 256, 16, 16, 224, 224},
    {5, 3, 97, 61, 0, 0, 97, 61},            // anisotropic, box == photo
    {14, 14, 300, 200, -40, -60, 380, 320},  // box larger than the photo
};

std::vector<float> ReadFloats(const std::string& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  std::vector<float> values(count);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * 4));
  if (!in || in.peek() != EOF) values.clear();
  return values;
}

// One test for all cases: the references cost one Python + torch start-up.
TEST(TorchInterpolateParityTest, PlaceOnPhotoMatchesInterpolateOntoTheBox) {
  if (std::system(
          absl::StrCat("'", CROPSHIELD_PYTHON, "' -c 'import torch' 2>/dev/null").c_str()) != 0) {
    GTEST_SKIP() << CROPSHIELD_PYTHON << " cannot import torch";
  }
  ::cropshield::testing::TempDir dir("cropshield_explain_parity");
  ASSERT_FALSE(dir.path().empty()) << "mkdtemp failed";
  std::string command = absl::StrCat("'", CROPSHIELD_PYTHON, "' '", CROPSHIELD_INTERPOLATE_SCRIPT,
                                     "' '", dir.path(), "'");
  for (const Case& c : kCases) {
    absl::StrAppend(&command, " ", c.mw, "x", c.mh, ":", c.pw, "x", c.ph, ":", c.bx, ",", c.by, ",",
                    c.bw, ",", c.bh);
  }
  ASSERT_EQ(std::system(command.c_str()), 0) << command;

  for (size_t i = 0; i < std::size(kCases); ++i) {
    const Case& c = kCases[i];
    SCOPED_TRACE(::testing::Message()
                 << "case " << i << ": " << c.mw << "x" << c.mh << " map on " << c.pw << "x" << c.ph
                 << ", box (" << c.bx << ", " << c.by << ", " << c.bw << ", " << c.bh << ")");
    const std::vector<float> map =
        ReadFloats(absl::StrCat(dir.path(), "/", i, ".map.f32"), static_cast<size_t>(c.mw) * c.mh);
    const std::vector<float> reference =
        ReadFloats(absl::StrCat(dir.path(), "/", i, ".ref.f32"), static_cast<size_t>(c.pw) * c.ph);
    ASSERT_FALSE(map.empty());
    ASSERT_FALSE(reference.empty());
    image::CropBox box;
    box.x = c.bx;
    box.y = c.by;
    box.width = c.bw;
    box.height = c.bh;
    absl::StatusOr<PhotoMap> placed = PlaceOnPhoto(map, c.mw, c.mh, box, c.pw, c.ph);
    ASSERT_TRUE(placed.ok()) << placed.status();
    double max_diff = 0;
    size_t worst = 0;
    for (size_t j = 0; j < reference.size(); ++j) {
      const double diff = std::abs(placed->values[j] - reference[j]);
      if (diff > max_diff) {
        max_diff = diff;
        worst = j;
      }
      const int x = static_cast<int>(j % c.pw);
      const int y = static_cast<int>(j / c.pw);
      const bool inside = x >= c.bx && x < c.bx + c.bw && y >= c.by && y < c.by + c.bh;
      ASSERT_EQ(placed->seen[j] != 0, inside) << x << "," << y;
    }
    EXPECT_LT(max_diff, 1e-5) << "worst at " << worst % c.pw << "," << worst / c.pw << ": "
                              << placed->values[worst] << " vs torch " << reference[worst];
  }
}

}  // namespace
}  // namespace cropshield::explain
