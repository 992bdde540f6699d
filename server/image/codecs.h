// Internal to cropshield_image: one probe and one decoder per container format. DecodeImage()
// dispatches here after DetectFormat(); each function assumes the magic bytes already matched.
//
// Thread safety: all functions are reentrant (every call owns its codec state).
#ifndef CROPSHIELD_SERVER_IMAGE_CODECS_H_
#define CROPSHIELD_SERVER_IMAGE_CODECS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/image/decode.h"

namespace cropshield::image::internal {

// Refuses images whose header claims more than `max_pixels` pixels (or more than this library will
// ever allocate), before any decoding work is done.
absl::Status CheckPixelBudget(int64_t width, int64_t height, int64_t max_pixels);

absl::StatusOr<ImageInfo> ProbeJpeg(absl::string_view bytes);
absl::StatusOr<ImageInfo> ProbePng(absl::string_view bytes);
absl::StatusOr<ImageInfo> ProbeWebp(absl::string_view bytes);

// Return the image as stored (orientation not yet applied); DecodeImage() applies it.
absl::StatusOr<DecodedImage> DecodeJpeg(absl::string_view bytes, const DecodeOptions& options,
                                        int* orientation);
absl::StatusOr<DecodedImage> DecodePng(absl::string_view bytes, const DecodeOptions& options);
absl::StatusOr<DecodedImage> DecodeWebp(absl::string_view bytes, const DecodeOptions& options);

}  // namespace cropshield::image::internal

#endif  // CROPSHIELD_SERVER_IMAGE_CODECS_H_
