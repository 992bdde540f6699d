// Files the CLI writes: Explain's images and float maps.
#ifndef CROPSHIELD_CLIENT_CLI_FILES_H_
#define CROPSHIELD_CLIENT_CLI_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "cropshield/v1/cropshield.pb.h"

namespace cropshield::cli {

// The overlay encoding a file name asks for: .png -> PNG, .jpg/.jpeg -> JPEG (any case).
// INVALID_ARGUMENT for any other name (.webp included): the server encodes overlays as PNG or JPEG
// only, and writing those bytes under another extension would mislabel them.
absl::StatusOr<v1::ImageEncoding> OverlayEncodingFor(absl::string_view path);

// OK when `path` names a PNG file (the heatmap is always PNG); INVALID_ARGUMENT otherwise.
absl::Status CheckPngName(absl::string_view path);

absl::Status WriteFile(const std::string& path, absl::string_view contents);

// NumPy .npy (format 1.0) of a little-endian float32 matrix when `path` ends in .npy, else the raw
// float32 values.
absl::Status WriteFloatMap(const std::string& path, const v1::FloatMap& map);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_FILES_H_
