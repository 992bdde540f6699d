#include "server/engine/cam.h"

#include <cstdint>

namespace cropshield::engine {
namespace {

constexpr double kCamEpsilon = 1e-12;

using CamMapFunction = torch::Tensor (*)(const torch::Tensor& activation,
                                         const torch::Tensor& gradient);

CamMapFunction CamMapFunctionOf(CamMethod method) {
  switch (method) {
    case CamMethod::kGradCam:
      return GradCamMap;
    case CamMethod::kGradCamPlusPlus:
      return GradCamPlusPlusMap;
    case CamMethod::kHiResCam:
      return HiResCamMap;
    case CamMethod::kLayerCam:
      return LayerCamMap;
  }
  return nullptr;
}

}  // namespace

torch::Tensor GradCamMap(const torch::Tensor& activation, const torch::Tensor& gradient) {
  torch::Tensor weights = gradient.mean({1, 2}, /*keepdim=*/true);
  return (weights * activation).sum(0);
}

torch::Tensor GradCamPlusPlusMap(const torch::Tensor& activation, const torch::Tensor& gradient) {
  // With an exponential score, higher derivatives are powers of the first (paper, eq. 19).
  torch::Tensor g2 = gradient.pow(2);
  torch::Tensor g3 = g2 * gradient;
  torch::Tensor activation_sums = activation.sum({1, 2}, /*keepdim=*/true);
  torch::Tensor alpha = g2 / (2 * g2 + activation_sums * g3 + 1e-7);
  alpha = torch::where(gradient != 0, alpha, torch::zeros_like(alpha));
  torch::Tensor weights = (alpha * torch::relu(gradient)).sum({1, 2}, /*keepdim=*/true);
  return (weights * activation).sum(0);
}

torch::Tensor HiResCamMap(const torch::Tensor& activation, const torch::Tensor& gradient) {
  return (gradient * activation).sum(0);
}

torch::Tensor LayerCamMap(const torch::Tensor& activation, const torch::Tensor& gradient) {
  return (torch::relu(gradient) * activation).sum(0);
}

torch::Tensor NormalisedMap(const torch::Tensor& map) {
  torch::Tensor cam = torch::relu(map);
  // Epsilon as a floor on the range (not added to it) keeps the result scale-invariant.
  return (cam - cam.min()) / torch::clamp_min(cam.max() - cam.min(), kCamEpsilon);
}

torch::Tensor ClassActivationMap(CamMethod method, const torch::Tensor& activation,
                                 const torch::Tensor& gradient) {
  const CamMapFunction map_of = CamMapFunctionOf(method);
  // A method outside the enum leaves the map undefined, and NormalisedMap throws on it.
  return NormalisedMap(map_of != nullptr ? map_of(activation, gradient) : torch::Tensor());
}

torch::Tensor ClassActivationMaps(const torch::Tensor& activations, const torch::Tensor& gradients,
                                  absl::Span<const CamRequest> requests) {
  const auto batch = static_cast<int64_t>(requests.size());
  torch::Tensor maps =
      torch::empty({batch, activations.size(2), activations.size(3)}, activations.options());
  for (int64_t i = 0; i < batch; ++i) {
    maps[i] = ClassActivationMap(requests[i].method, activations[i], gradients[i]);
  }
  return maps;
}

}  // namespace cropshield::engine
