// What a photo file's header says: container, pixel size and colour channels, read from the bytes
// without decoding. `cropshield bench` uses it to tell photos from lesion masks (greyscale PNGs)
// and from files that are not images, and to describe the photo set it loaded.
//
// Thread safety: pure functions of their arguments.
#ifndef CROPSHIELD_CLIENT_BENCH_PHOTO_HEADER_H_
#define CROPSHIELD_CLIENT_BENCH_PHOTO_HEADER_H_

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace cropshield::bench {

struct PhotoHeader {
  std::string format;  // "jpeg", "png" or "webp"
  int width = 0;
  int height = 0;
  // Colour channels the file stores, alpha included: 1 grey, 2 grey+alpha, 3 colour, 4 colour+alpha
  // (or CMYK for JPEG). A PNG palette counts as colour. WebP always reads as 3: its header does not
  // say, and WebP masks are not a thing this project ships.
  int channels = 0;

  bool greyscale() const { return channels == 1 || channels == 2; }
};

// The header of a JPEG (first SOFn segment), PNG (IHDR) or WebP (VP8, VP8L or VP8X chunk) in
// `bytes`; nullopt when the bytes are none of these or the header is cut short.
std::optional<PhotoHeader> ReadPhotoHeader(absl::string_view bytes);

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_PHOTO_HEADER_H_
