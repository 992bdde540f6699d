// libFuzzer target for the image decoders and preprocessing: any input must yield OK or
// INVALID_ARGUMENT (never a crash, leak, sanitizer report or other status code).
//
// scripts/fuzz.sh builds it with clang (CROPSHIELD_SANITIZE=fuzzer) and runs it, e.g.
//   build-fuzz/tests/fuzz/image_decode_fuzzer -max_len=65536 tests/fuzz/image/corpus
// Other builds link it with a replay main (image_decode_fuzzer_replay, CTest fuzz.*).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"

namespace {

void CheckStatus(const absl::Status& status) {
  if (!status.ok() &&
      (status.code() != absl::StatusCode::kInvalidArgument || status.message().empty())) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cropshield::image;  // NOLINT(build/namespaces): a fuzz entry point.
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckStatus(ProbeImage(bytes).status());

  DecodeOptions options;
  options.max_pixels = 4'000'000;  // keeps each run fast; the limit logic is exercised too
  options.min_shorter_side = size > 0 ? data[size - 1] % 128 : 0;
  absl::StatusOr<DecodedImage> image = DecodeImage(bytes, options);
  CheckStatus(image.status());
  if (!image.ok()) return 0;
  if (image->rgb.size() != static_cast<size_t>(image->width) * image->height * 3) std::abort();

  PreprocessOptions preprocess;
  preprocess.resize_shorter_side = 40;
  preprocess.input_size = 32 + (size % 16);  // sometimes larger than the resized image: padding
  std::vector<float> out(3 * preprocess.input_size * preprocess.input_size);
  CropBox box;
  CheckStatus(Preprocess(*image, preprocess, absl::MakeSpan(out), &box));
  return 0;
}
