#include "server/image/decode.h"

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "server/image/codecs.h"
#include "server/image/exif.h"

namespace cropshield::image {
namespace {

// Refused whatever the caller's max_pixels: 2^30 pixels is already a 3 GiB RGB buffer.
constexpr int64_t kHardPixelLimit = int64_t{1} << 30;

constexpr absl::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

// Names formats we recognise but do not decode, so the error tells the client what to change.
absl::string_view SniffUnsupported(absl::string_view b) {
  if (absl::StartsWith(b, "GIF87a") || absl::StartsWith(b, "GIF89a")) return "GIF";
  if (absl::StartsWith(b, "BM")) return "BMP";
  if (absl::StartsWith(b, absl::string_view("II*\0", 4)) ||
      absl::StartsWith(b, absl::string_view("MM\0*", 4))) {
    return "TIFF";
  }
  if (b.size() >= 12 && b.substr(4, 4) == "ftyp") {
    const absl::string_view brand = b.substr(8, 4);
    if (brand == "avif" || brand == "avis") return "AVIF";
    if (brand == "heic" || brand == "heix" || brand == "mif1" || brand == "msf1") return "HEIF";
  }
  return "";
}

// True when `b` is too short to carry a signature but starts like one of ours.
bool IsCutOffSignature(absl::string_view b) {
  if (b.empty()) return false;
  if (absl::StartsWith(kPngSignature, b)) return true;
  if (absl::StartsWith(absl::string_view("\xff\xd8\xff", 3), b)) return true;
  return b.size() < 12 && (absl::StartsWith(b, "RIFF") || absl::StartsWith("RIFF", b));
}

absl::Status UnrecognisedFormat(absl::string_view bytes) {
  if (bytes.empty()) return absl::InvalidArgumentError("empty image data");
  if (IsCutOffSignature(bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("truncated image data: only ", bytes.size(), " bytes"));
  }
  const absl::string_view sniffed = SniffUnsupported(bytes);
  if (!sniffed.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported image format ", sniffed, " (supported: JPEG, PNG, WebP)"));
  }
  return absl::InvalidArgumentError(absl::StrCat("unrecognised image format (", bytes.size(),
                                                 " bytes, no JPEG, PNG or WebP signature)"));
}

}  // namespace

namespace internal {

absl::Status CheckPixelBudget(int64_t width, int64_t height, int64_t max_pixels) {
  const int64_t pixels = width * height;  // Each side < 2^31: no overflow.
  if (pixels > max_pixels) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", width, "x", height, " = ", pixels,
                                                   " pixels, over the limit of ", max_pixels));
  }
  if (pixels > kHardPixelLimit) {
    return absl::InvalidArgumentError(absl::StrCat("image is ", width, "x", height, " = ", pixels,
                                                   " pixels, over the decoder's hard limit of ",
                                                   kHardPixelLimit));
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::string_view ImageFormatName(ImageFormat f) {
  switch (f) {
    case ImageFormat::kJpeg:
      return "jpeg";
    case ImageFormat::kPng:
      return "png";
    case ImageFormat::kWebp:
      return "webp";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

ImageFormat DetectFormat(absl::string_view bytes) {
  if (bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xFF &&
      static_cast<uint8_t>(bytes[1]) == 0xD8 && static_cast<uint8_t>(bytes[2]) == 0xFF) {
    return ImageFormat::kJpeg;
  }
  if (absl::StartsWith(bytes, kPngSignature)) return ImageFormat::kPng;
  if (bytes.size() >= 12 && absl::StartsWith(bytes, "RIFF") && bytes.substr(8, 4) == "WEBP") {
    return ImageFormat::kWebp;
  }
  return ImageFormat::kUnknown;
}

absl::StatusOr<ImageInfo> ProbeImage(absl::string_view bytes) {
  switch (DetectFormat(bytes)) {
    case ImageFormat::kJpeg:
      return internal::ProbeJpeg(bytes);
    case ImageFormat::kPng:
      return internal::ProbePng(bytes);
    case ImageFormat::kWebp:
      return internal::ProbeWebp(bytes);
    case ImageFormat::kUnknown:
      break;
  }
  return UnrecognisedFormat(bytes);
}

absl::StatusOr<DecodedImage> DecodeImage(absl::string_view bytes, const DecodeOptions& options) {
  if (options.max_pixels <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("DecodeOptions.max_pixels must be positive, got ", options.max_pixels));
  }
  if (options.min_shorter_side < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DecodeOptions.min_shorter_side must not be negative, got ", options.min_shorter_side));
  }
  switch (DetectFormat(bytes)) {
    case ImageFormat::kJpeg: {
      int orientation = 1;
      CS_ASSIGN_OR_RETURN(DecodedImage image, internal::DecodeJpeg(bytes, options, &orientation));
      CS_RETURN_IF_ERROR(
          internal::ApplyExifOrientation(orientation, &image.width, &image.height, &image.rgb));
      if (internal::OrientationSwapsAxes(orientation)) {
        std::swap(image.full_width, image.full_height);
      }
      return image;
    }
    case ImageFormat::kPng:
      return internal::DecodePng(bytes, options);
    case ImageFormat::kWebp:
      return internal::DecodeWebp(bytes, options);
    case ImageFormat::kUnknown:
      break;
  }
  return UnrecognisedFormat(bytes);
}

}  // namespace cropshield::image
