#include "server/image/png_handle.h"

#include <png.h>

#include <cstdio>

namespace cropshield::image {
namespace {

void OnPngError(png_structp png, png_const_charp message) {
  auto* error = static_cast<PngError*>(png_get_error_ptr(png));
  if (error != nullptr) {
    std::snprintf(error->message, sizeof(error->message), "%s",
                  message != nullptr ? message : "unknown libpng error");
  }
  png_longjmp(png, 1);
}

void OnPngWarning(png_structp, png_const_charp) {}

}  // namespace

PngHandle::PngHandle(Mode mode, PngError* error) : mode_(mode) {
  png_ = mode == Mode::kRead
             ? png_create_read_struct(PNG_LIBPNG_VER_STRING, error, OnPngError, OnPngWarning)
             : png_create_write_struct(PNG_LIBPNG_VER_STRING, error, OnPngError, OnPngWarning);
  if (png_ == nullptr) return;
  info_ = png_create_info_struct(png_);
  png_set_user_limits(png_, kPngMaxDimension, kPngMaxDimension);
}

PngHandle::~PngHandle() {
  if (png_ == nullptr) return;
  png_infopp info = info_ != nullptr ? &info_ : nullptr;
  if (mode_ == Mode::kRead) {
    png_destroy_read_struct(&png_, info, nullptr);
  } else {
    png_destroy_write_struct(&png_, info);
  }
}

}  // namespace cropshield::image
