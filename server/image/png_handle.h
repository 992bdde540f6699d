// The libpng setup that the PNG decoder (png.cc) and the PNG encoder (server/explain/encode.cc)
// share: one owner of libpng's structs, an error handler that keeps libpng's message, no warnings
// on stderr, and PNG's own size limit instead of libpng's default one. Includes <png.h>, so it is
// not a public header of cropshield_image: only for targets that link PNG::PNG themselves.
//
// libpng reports errors by longjmp. C++ objects with destructors must never be live in a frame that
// longjmp skips, so a function that calls setjmp(png_jmpbuf(handle.png())) must hold only trivially
// destructible locals; the PngHandle and any buffers belong to its caller.
#ifndef CROPSHIELD_SERVER_IMAGE_PNG_HANDLE_H_
#define CROPSHIELD_SERVER_IMAGE_PNG_HANDLE_H_

#include <png.h>

#include <cstdint>

namespace cropshield::image {

// PNG's limit on either side of an image: 2^31 - 1.
inline constexpr uint32_t kPngMaxDimension = 0x7fffffff;

// What libpng said when it failed. Must stay trivially destructible: it is live across
// setjmp/longjmp.
struct PngError {
  char message[256];
};

// A libpng read or write struct and its info struct. On an error libpng's message is copied into
// `*error` (which must outlive the handle), then libpng longjmps to png_jmpbuf(png()). Warnings
// concern ancillary data (bad CRC on a text chunk, unknown sRGB profile...), so they are ignored
// rather than printed to stderr. The size limit is PNG's own (kPngMaxDimension per side): the
// callers' pixel budgets are the limits that matter, and libpng's default of 1000000 pixels per
// side would only refuse legal, thin images.
class PngHandle {
 public:
  enum class Mode { kRead, kWrite };

  PngHandle(Mode mode, PngError* error);
  ~PngHandle();
  PngHandle(const PngHandle&) = delete;
  PngHandle& operator=(const PngHandle&) = delete;

  // False when libpng could not allocate its structs.
  bool ok() const { return png_ != nullptr && info_ != nullptr; }
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  Mode mode_;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

}  // namespace cropshield::image

#endif  // CROPSHIELD_SERVER_IMAGE_PNG_HANDLE_H_
