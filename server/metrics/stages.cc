#include "server/metrics/stages.h"

#include "cropshield/v1/cropshield.pb.h"

namespace cropshield::metrics {

std::array<int64_t, kStageCount> StageMicros(const cropshield::v1::Timing& timing) {
  std::array<int64_t, kStageCount> micros{};
  micros[static_cast<int>(Stage::kDecode)] = timing.decode_us();
  micros[static_cast<int>(Stage::kPreprocess)] = timing.preprocess_us();
  micros[static_cast<int>(Stage::kQueue)] = timing.queue_us();
  micros[static_cast<int>(Stage::kInference)] = timing.inference_us();
  micros[static_cast<int>(Stage::kExplain)] = timing.explain_us();
  micros[static_cast<int>(Stage::kEncode)] = timing.encode_us();
  return micros;
}

}  // namespace cropshield::metrics
