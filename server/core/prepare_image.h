// The request path of one image, independent of gRPC: decode -> preprocess -> classify.
//
// Thread-safety: functions are reentrant; ClassifyImage may run on many threads at once.
#ifndef CROPSHIELD_SERVER_CORE_PREPARE_IMAGE_H_
#define CROPSHIELD_SERVER_CORE_PREPARE_IMAGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/request_validation.h"  // ImageLimits, CheckImageSize, ResolveTopK
#include "server/engine/model.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"

namespace cropshield::core {

// A decoded photo and the model input made from it.
struct PreparedImage {
  // The decode's sizes; `decoded.rgb` is empty unless a photo was kept (PrepareImage), and then
  // `decoded.width` x `decoded.height` are its size.
  image::DecodedImage decoded;
  std::vector<float> input;  // model.input_elements() floats, CHW
  image::CropBox crop_box;   // where the input lies on the full-size photo
  int64_t decode_us = 0;
  int64_t preprocess_us = 0;
};

// Preprocessing parameters from the model package's metadata.
image::PreprocessOptions PreprocessOptionsFor(const engine::Model& model);

// Decodes (JPEG at the smallest DCT scale that still serves the resize) and preprocesses. The
// decoded pixels are dropped (a queued call holds only the model input), except that with a
// non-zero `keep_photo_at` a decode at least that large is kept, downscaled to exactly that size
// (Explain draws its overlay on it).
absl::StatusOr<PreparedImage> PrepareImage(const engine::Model& model, absl::string_view bytes,
                                           const ImageLimits& limits,
                                           OutputSize keep_photo_at = {});

// The k most probable classes, highest first (ties by lower index).
std::vector<cropshield::v1::Prediction> TopK(absl::Span<const float> probabilities, int k,
                                             const cropshield::v1::ModelMetadata& metadata);

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_PREPARE_IMAGE_H_
