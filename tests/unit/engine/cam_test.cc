// The class activation map arithmetic (server/engine/cam.h) on small hand-made tensors, against
// the papers' formulas written out here.
#include "server/engine/cam.h"

#include <torch/types.h>

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"

namespace cropshield::engine {
namespace {

// Activation and gradient of 2 channels over a 2 x 2 map; one gradient element is negative and
// one is zero.
torch::Tensor Activation() {
  return torch::tensor({1.0f, 2.0f, 3.0f, 4.0f, 0.5f, 0.0f, 1.5f, 2.0f}).view({2, 2, 2});
}
torch::Tensor Gradient() {
  return torch::tensor({0.2f, 0.4f, -0.2f, 0.6f, 0.0f, 1.0f, 0.5f, 0.5f}).view({2, 2, 2});
}

void ExpectMap(const torch::Tensor& map, const std::vector<float>& want) {
  ASSERT_EQ(map.dim(), 2);
  ASSERT_EQ(map.numel(), static_cast<int64_t>(want.size()));
  torch::Tensor flat = map.contiguous().view({-1});
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(flat[static_cast<int64_t>(i)].item<float>(), want[i], 1e-5) << "element " << i;
  }
}

TEST(CamTest, GradCamWeightsChannelsByTheirMeanGradient) {
  torch::NoGradGuard no_grad;
  // Channel means of the gradient: 0.25 and 0.5.
  ExpectMap(GradCamMap(Activation(), Gradient()), {0.25f * 1 + 0.5f * 0.5f, 0.25f * 2 + 0.5f * 0,
                                                   0.25f * 3 + 0.5f * 1.5f, 0.25f * 4 + 0.5f * 2});
}

TEST(CamTest, GradCamPlusPlusWeightsChannelsByAlphaTimesPositiveGradient) {
  torch::NoGradGuard no_grad;
  const std::vector<float> a = {1, 2, 3, 4, 0.5f, 0, 1.5f, 2};
  const std::vector<float> g = {0.2f, 0.4f, -0.2f, 0.6f, 0, 1, 0.5f, 0.5f};
  double weights[2] = {0, 0};
  for (int c = 0; c < 2; ++c) {
    double activation_sum = 0;
    for (int j = 0; j < 4; ++j) activation_sum += a[c * 4 + j];
    for (int j = 0; j < 4; ++j) {
      const double gj = g[c * 4 + j];
      if (gj == 0) continue;  // alpha is 0 where the gradient is
      const double alpha = gj * gj / (2 * gj * gj + activation_sum * gj * gj * gj + 1e-7);
      weights[c] += alpha * std::max(0.0, gj);
    }
  }
  std::vector<float> want(4);
  for (int j = 0; j < 4; ++j) {
    want[j] = static_cast<float>(weights[0] * a[j] + weights[1] * a[4 + j]);
  }
  ExpectMap(GradCamPlusPlusMap(Activation(), Gradient()), want);
}

TEST(CamTest, HiResCamKeepsNegativeGradientsAndLayerCamDropsThem) {
  torch::NoGradGuard no_grad;
  ExpectMap(HiResCamMap(Activation(), Gradient()),
            {0.2f * 1 + 0, 0.4f * 2 + 1 * 0, -0.2f * 3 + 0.5f * 1.5f, 0.6f * 4 + 0.5f * 2});
  ExpectMap(LayerCamMap(Activation(), Gradient()),
            {0.2f * 1 + 0, 0.4f * 2 + 1 * 0, 0 + 0.5f * 1.5f, 0.6f * 4 + 0.5f * 2});
}

TEST(CamTest, NormalisedMapIsRectifiedScaledToOneAndScaleInvariant) {
  torch::NoGradGuard no_grad;
  torch::Tensor map = torch::tensor({-1.0f, 0.0f, 1.0f, 3.0f}).view({2, 2});
  ExpectMap(NormalisedMap(map), {0, 0, 1.0f / 3, 1});
  ExpectMap(NormalisedMap(map * 1e-6), {0, 0, 1.0f / 3, 1});
  // Nothing positive: all zeros, not a division by zero.
  ExpectMap(NormalisedMap(-map.abs()), {0, 0, 0, 0});
}

TEST(CamTest, BatchUsesEachRequestsMethodAndMatchesSingleMaps) {
  torch::NoGradGuard no_grad;
  torch::Tensor activations = torch::stack({Activation(), Activation().flip(2)});
  torch::Tensor gradients = torch::stack({Gradient(), Gradient()});
  const std::vector<CamRequest> requests = {{-1, CamMethod::kLayerCam},
                                            {3, CamMethod::kGradCamPlusPlus}};
  torch::Tensor maps = ClassActivationMaps(activations, gradients, requests);
  ASSERT_EQ(maps.sizes(), torch::IntArrayRef({2, 2, 2}));
  for (int i = 0; i < 2; ++i) {
    torch::Tensor single = ClassActivationMap(requests[i].method, activations[i], gradients[i]);
    EXPECT_TRUE(torch::equal(maps[i], single)) << "image " << i;
  }
}

TEST(CamTest, MethodOutsideTheEnumThrows) {
  torch::NoGradGuard no_grad;
  // Explain turns the exception into INTERNAL.
  EXPECT_ANY_THROW(ClassActivationMap(static_cast<CamMethod>(9), Activation(), Gradient()));
}

}  // namespace
}  // namespace cropshield::engine
