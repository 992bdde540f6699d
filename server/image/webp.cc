// WebP through libwebp's advanced decoding API, which reports why decoding failed.
#include <webp/decode.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/image/codecs.h"
#include "server/image/decode.h"

namespace cropshield::image::internal {
namespace {

absl::Status WebpFailure(VP8StatusCode code) {
  switch (code) {
    case VP8_STATUS_NOT_ENOUGH_DATA:
      return absl::InvalidArgumentError("truncated WebP data");
    case VP8_STATUS_UNSUPPORTED_FEATURE:
      return absl::InvalidArgumentError("unsupported WebP feature");
    case VP8_STATUS_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError("out of memory decoding WebP");
    case VP8_STATUS_BITSTREAM_ERROR:
      return absl::InvalidArgumentError("corrupt WebP data: bitstream error");
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("corrupt WebP data (libwebp status ", static_cast<int>(code), ")"));
  }
}

absl::StatusOr<WebPBitstreamFeatures> ReadFeatures(absl::string_view bytes) {
  WebPBitstreamFeatures features;
  const VP8StatusCode code =
      WebPGetFeatures(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &features);
  if (code != VP8_STATUS_OK) {
    if (code == VP8_STATUS_NOT_ENOUGH_DATA) {
      return absl::InvalidArgumentError("truncated WebP data: header incomplete");
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "corrupt WebP header: ", code == VP8_STATUS_UNSUPPORTED_FEATURE
                                     ? "unsupported feature"
                                     : absl::StrCat("libwebp status ", static_cast<int>(code))));
  }
  if (features.has_animation) {
    return absl::InvalidArgumentError("unsupported WebP: animated images are not supported");
  }
  if (features.width <= 0 || features.height <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("corrupt WebP header: invalid dimensions ",
                                                   features.width, "x", features.height));
  }
  return features;
}

}  // namespace

absl::StatusOr<ImageInfo> ProbeWebp(absl::string_view bytes) {
  CS_ASSIGN_OR_RETURN(const WebPBitstreamFeatures features, ReadFeatures(bytes));
  ImageInfo info;
  info.format = ImageFormat::kWebp;
  info.width = features.width;
  info.height = features.height;
  return info;
}

absl::StatusOr<DecodedImage> DecodeWebp(absl::string_view bytes, const DecodeOptions& options) {
  CS_ASSIGN_OR_RETURN(const WebPBitstreamFeatures features, ReadFeatures(bytes));
  CS_RETURN_IF_ERROR(CheckPixelBudget(features.width, features.height, options.max_pixels));

  DecodedImage image;
  image.format = ImageFormat::kWebp;
  image.width = image.full_width = features.width;
  image.height = image.full_height = features.height;
  image.rgb.resize(static_cast<size_t>(image.width) * image.height * 3);

  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) {
    return absl::InternalError("libwebp decoder ABI version mismatch");
  }
  // MODE_RGB writes the colour channels only: alpha is dropped, not premultiplied.
  config.output.colorspace = MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = image.rgb.data();
  config.output.u.RGBA.stride = image.width * 3;
  config.output.u.RGBA.size = image.rgb.size();
  const VP8StatusCode code =
      WebPDecode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);  // No-op for external memory; kept for symmetry with Init.
  if (code != VP8_STATUS_OK) return WebpFailure(code);
  if (config.output.width != image.width || config.output.height != image.height) {
    return absl::InvalidArgumentError("corrupt WebP data: bitstream size differs from its header");
  }
  return image;
}

}  // namespace cropshield::image::internal
