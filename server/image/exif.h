// Internal to cropshield_image: EXIF orientation, read from the TIFF structure of a JPEG APP1
// segment and applied to decoded pixels.
//
// Thread safety: pure functions, safe to call concurrently.
#ifndef CROPSHIELD_SERVER_IMAGE_EXIF_H_
#define CROPSHIELD_SERVER_IMAGE_EXIF_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cropshield::image::internal {

// `tiff` is the APP1 payload after the "Exif\0\0" identifier: a TIFF header (II or MM byte order)
// followed by IFD0. Returns the Orientation tag (0x0112) when it is present and in 1..8, else 1.
// Malformed metadata is deliberately not an error: the pixels are still a valid photo.
int ParseExifOrientation(absl::string_view tiff);

// True when `orientation` swaps width and height (5..8).
inline bool OrientationSwapsAxes(int orientation) { return orientation >= 5 && orientation <= 8; }

// Rewrites `*rgb` (width x height, RGB8 interleaved) into display orientation, updating
// *width/*height. Orientation outside 2..8 leaves the image untouched.
absl::Status ApplyExifOrientation(int orientation, int* width, int* height,
                                  std::vector<uint8_t>* rgb);

}  // namespace cropshield::image::internal

#endif  // CROPSHIELD_SERVER_IMAGE_EXIF_H_
