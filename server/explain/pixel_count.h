// Internal to cropshield_explain_render: the size check shared by the renderers (render.cc) and the
// encoders (encode.cc).
#ifndef CROPSHIELD_SERVER_EXPLAIN_PIXEL_COUNT_H_
#define CROPSHIELD_SERVER_EXPLAIN_PIXEL_COUNT_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cropshield::explain::internal {

// INVALID_ARGUMENT, naming `what`, when width or height is not positive or width * height is over
// kMaxRenderPixels.
absl::Status CheckPixelCount(int width, int height, absl::string_view what);

}  // namespace cropshield::explain::internal

#endif  // CROPSHIELD_SERVER_EXPLAIN_PIXEL_COUNT_H_
