// The stages of a call, and their one name table: Stats' stage_latency and Prometheus'
// cropshield_stage_duration_seconds{stage} use the same names.
//
// Thread-safety: pure functions.
#ifndef CROPSHIELD_SERVER_METRICS_STAGES_H_
#define CROPSHIELD_SERVER_METRICS_STAGES_H_

#include <array>
#include <cstdint>

namespace cropshield::v1 {
class Timing;
}

namespace cropshield::metrics {

enum class Stage { kDecode, kPreprocess, kQueue, kInference, kExplain, kEncode };
inline constexpr int kStageCount = 6;
inline constexpr std::array<const char*, kStageCount> kStageNames = {
    "decode", "preprocess", "queue", "inference", "explain", "encode"};

inline const char* StageName(Stage stage) { return kStageNames[static_cast<int>(stage)]; }

// Microseconds per stage (indexed by Stage) from a response's timing; zero for a stage that did
// not run (Predict has no explain or encode stage, cache hits have none).
std::array<int64_t, kStageCount> StageMicros(const cropshield::v1::Timing& timing);

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_STAGES_H_
