// Class activation map arithmetic for Model::Explain. Internal to server/engine (torch types).
//
// Every map function takes one image's activation (the features method's output) and the
// gradient of its target class score with respect to that activation, both C x h x w, and
// returns the h x w weighted sum over channels, before rectification and normalisation. Call
// them under torch::NoGradGuard: the maps are results, not part of a graph to differentiate.
#ifndef CROPSHIELD_SERVER_ENGINE_CAM_H_
#define CROPSHIELD_SERVER_ENGINE_CAM_H_

#include <torch/types.h>

#include "absl/types/span.h"
#include "server/engine/model.h"

namespace cropshield::engine {

// Channel-weighted maps: one weight per channel, from the gradient.

// Grad-CAM (Selvaraju et al. 2017): weights = spatial mean of the gradients.
torch::Tensor GradCamMap(const torch::Tensor& activation, const torch::Tensor& gradient);
// Grad-CAM++ (Chattopadhay et al. 2018): weights from 2nd/3rd-order terms (exponential score).
torch::Tensor GradCamPlusPlusMap(const torch::Tensor& activation, const torch::Tensor& gradient);

// Element-wise maps: every activation element weighted by its own gradient.

// HiResCAM (Draelos & Carin 2020): sum over channels of gradient * activation.
torch::Tensor HiResCamMap(const torch::Tensor& activation, const torch::Tensor& gradient);
// LayerCAM (Jiang et al. 2021): sum over channels of relu(gradient) * activation.
torch::Tensor LayerCamMap(const torch::Tensor& activation, const torch::Tensor& gradient);

// relu(map), then min-max normalised to [0, 1] (a constant map becomes all zeros).
torch::Tensor NormalisedMap(const torch::Tensor& map);

// `method`'s map of one image, normalised.
torch::Tensor ClassActivationMap(CamMethod method, const torch::Tensor& activation,
                                 const torch::Tensor& gradient);

// A batch: activations and gradients N x C x h x w, requests[i].method for image i ->
// N x h x w normalised maps on the activations' device.
torch::Tensor ClassActivationMaps(const torch::Tensor& activations, const torch::Tensor& gradients,
                                  absl::Span<const CamRequest> requests);

}  // namespace cropshield::engine

#endif  // CROPSHIELD_SERVER_ENGINE_CAM_H_
