#include "server/core/prepare_image.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/stopwatch.h"
#include "server/image/resize.h"

namespace cropshield::core {

image::PreprocessOptions PreprocessOptionsFor(const engine::Model& model) {
  return engine::PreprocessOptionsOf(model.metadata());
}

namespace {

// Keeps the decode at exactly `size` when it is at least that large; drops its pixels otherwise.
absl::Status KeepPhotoAt(OutputSize size, image::DecodedImage* decoded) {
  if (size.pixels() == 0 || decoded->width < size.width || decoded->height < size.height) {
    std::vector<uint8_t>().swap(decoded->rgb);
    return absl::OkStatus();
  }
  if (decoded->width == size.width && decoded->height == size.height) return absl::OkStatus();
  CS_ASSIGN_OR_RETURN(
      std::vector<uint8_t> resized,
      image::ResizeRgb(decoded->rgb, decoded->width, decoded->height, size.width, size.height));
  decoded->rgb = std::move(resized);
  decoded->width = size.width;
  decoded->height = size.height;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PreparedImage> PrepareImage(const engine::Model& model, absl::string_view bytes,
                                           const ImageLimits& limits, OutputSize keep_photo_at) {
  CS_RETURN_IF_ERROR(CheckImageSize(bytes, limits));
  PreparedImage prepared;
  Stopwatch watch;
  const image::PreprocessOptions preprocess = PreprocessOptionsFor(model);
  image::DecodeOptions decode_options;
  decode_options.max_pixels = limits.max_image_pixels;
  decode_options.min_shorter_side = preprocess.resize_shorter_side;
  CS_ASSIGN_OR_RETURN(prepared.decoded, image::DecodeImage(bytes, decode_options));
  prepared.decode_us = watch.LapMicros();
  prepared.input.resize(static_cast<size_t>(model.input_elements()));
  CS_RETURN_IF_ERROR(image::Preprocess(prepared.decoded, preprocess, absl::MakeSpan(prepared.input),
                                       &prepared.crop_box));
  CS_RETURN_IF_ERROR(KeepPhotoAt(keep_photo_at, &prepared.decoded));
  prepared.preprocess_us = watch.LapMicros();
  return prepared;
}

std::vector<cropshield::v1::Prediction> TopK(absl::Span<const float> probabilities, int k,
                                             const cropshield::v1::ModelMetadata& metadata) {
  std::vector<int> order(probabilities.size());
  std::iota(order.begin(), order.end(), 0);
  k = std::min<int>(k, static_cast<int>(order.size()));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
    return probabilities[a] > probabilities[b] || (probabilities[a] == probabilities[b] && a < b);
  });
  std::vector<cropshield::v1::Prediction> top;
  top.reserve(k);
  for (int i = 0; i < k; ++i) {
    cropshield::v1::Prediction& p = top.emplace_back();
    p.set_class_index(order[i]);
    p.set_label(metadata.labels(order[i]));
    p.set_probability(probabilities[order[i]]);
  }
  return top;
}

}  // namespace cropshield::core
