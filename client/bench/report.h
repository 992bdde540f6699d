// What `cropshield bench` prints and writes: a table row per step on stdout, a JSON document
// (settings, the photo set, every step) and a CSV file with one row per step.
//
// Thread safety: pure functions of their arguments, apart from the files they write.
#ifndef CROPSHIELD_CLIENT_BENCH_REPORT_H_
#define CROPSHIELD_CLIENT_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/bench/photo_set.h"
#include "client/bench/step_result.h"
#include "nlohmann/json.hpp"

namespace cropshield::bench {

// The table's header for `mode` ("closed" or "open"), then one row per step. Open-loop rows add the
// achieved send rate, the delayed and dropped arrivals.
std::string TableHeader(const std::string& mode);
std::string TableRow(const StepResult& step);

// A warning for an open-loop step that could not keep its schedule (arrivals delayed or
// dropped); empty when it kept it.
std::string ScheduleWarning(const StepResult& step);

nlohmann::json StepJson(const StepResult& step);

// {"settings": ..., "photos": ..., "steps": [...]}, plus, for a single step, that step's fields at
// the top level as the one-step format had them (scripts written for it keep working).
nlohmann::json ReportJson(const nlohmann::json& settings, const PhotoSet& photos,
                          const std::vector<StepResult>& steps);

// CSV: a header, then one row per step (milliseconds, requests per second).
std::string ReportCsv(const std::vector<StepResult>& steps);

// Writes `contents` to `path`; INTERNAL naming the path when it cannot.
absl::Status WriteTextFile(const std::string& path, const std::string& contents);

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_REPORT_H_
