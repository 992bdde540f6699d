#include "client/bench/report.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace cropshield::bench {
namespace {

constexpr char kCsvHeader[] =
    "mode,rpc,concurrency,rate,requests,ok,errors,seconds,throughput,p50_ms,p90_ms,p99_ms,"
    "p999_ms,max_ms,mean_ms,scheduled,sent,sent_rate,late,delayed,dropped,max_send_lag_ms,"
    "max_outstanding";

std::string ErrorsText(const StepResult& step) {
  std::vector<std::string> parts;
  for (const auto& [code, count] : step.errors) parts.push_back(absl::StrCat(code, "=", count));
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string TableHeader(const std::string& mode) {
  std::string header = absl::StrFormat("%-8s %8s %7s %9s %9s %9s %9s %9s", "load", "requests",
                                       "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms");
  if (mode == "open")
    absl::StrAppend(&header,
                    absl::StrFormat(" %8s %6s %8s %8s", "sent/s", "late", "delayed", "dropped"));
  return header;
}

std::string TableRow(const StepResult& step) {
  const LatencySummary& l = step.latency;
  std::string row =
      absl::StrFormat("%-8s %8d %7d %9.1f %9.2f %9.2f %9.2f %9.2f", step.Label(), step.requests,
                      step.error_count(), step.throughput, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms);
  if (step.mode == "open") {
    absl::StrAppend(&row, absl::StrFormat(" %8.1f %6d %8d %8d", step.open.sent_rate, step.open.late,
                                          step.open.delayed, step.open.dropped));
  }
  if (!step.errors.empty()) absl::StrAppend(&row, "  errors: ", ErrorsText(step));
  return row;
}

std::string ScheduleWarning(const StepResult& step) {
  const OpenLoopCounts& o = step.open;
  if (step.mode != "open" || (o.late == 0 && o.delayed == 0 && o.dropped == 0)) return "";
  return absl::StrFormat(
      "warning: %s: of %d arrivals %d were sent >= 1 ms late (latest %.1f ms), %d waited for "
      "one of the --max_outstanding=%d slots, %d were dropped; latency counts from the "
      "scheduled time",
      step.Label(), o.scheduled, o.late, o.max_send_lag_ms, o.delayed, o.max_outstanding,
      o.dropped);
}

nlohmann::json StepJson(const StepResult& step) {
  const LatencySummary& l = step.latency;
  nlohmann::json json = {{"mode", step.mode},
                         {"rpc", step.rpc},
                         {"label", step.Label()},
                         {"requests", step.requests},
                         {"ok", step.ok},
                         {"errors", step.errors},
                         {"error_count", step.error_count()},
                         {"seconds", step.seconds},
                         {"throughput", step.throughput},
                         {"p50_ms", l.p50_ms},
                         {"p90_ms", l.p90_ms},
                         {"p99_ms", l.p99_ms},
                         {"p999_ms", l.p999_ms},
                         {"max_ms", l.max_ms},
                         {"mean_ms", l.mean_ms}};
  if (step.mode == "closed") {
    json["concurrency"] = step.concurrency;
    return json;
  }
  const OpenLoopCounts& o = step.open;
  json["rate"] = o.target_rate;
  json["scheduled"] = o.scheduled;
  json["sent"] = o.sent;
  json["sent_rate"] = o.sent_rate;
  json["late"] = o.late;
  json["delayed"] = o.delayed;
  json["dropped"] = o.dropped;
  json["max_send_lag_ms"] = o.max_send_lag_ms;
  json["max_outstanding"] = o.max_outstanding;
  return json;
}

nlohmann::json ReportJson(const nlohmann::json& settings, const PhotoSet& photos,
                          const std::vector<StepResult>& steps) {
  nlohmann::json report = nlohmann::json::object();
  if (steps.size() == 1) report = StepJson(steps.front());
  report["settings"] = settings;
  report["photos"] = PhotoSetJson(photos);
  report["steps"] = nlohmann::json::array();
  for (const StepResult& step : steps) report["steps"].push_back(StepJson(step));
  return report;
}

std::string ReportCsv(const std::vector<StepResult>& steps) {
  std::string csv = absl::StrCat(kCsvHeader, "\n");
  for (const StepResult& s : steps) {
    const bool open = s.mode == "open";
    const LatencySummary& l = s.latency;
    const OpenLoopCounts& o = s.open;
    absl::StrAppend(
        &csv, absl::StrFormat("%s,%s,%s,%s,%d,%d,%d,%.4f,%.3f,", s.mode, s.rpc,
                              open ? "" : absl::StrCat(s.concurrency),
                              open ? absl::StrFormat("%g", o.target_rate) : "", s.requests, s.ok,
                              s.error_count(), s.seconds, s.throughput));
    absl::StrAppend(&csv, absl::StrFormat("%.4f,%.4f,%.4f,%.4f,%.4f,%.4f", l.p50_ms, l.p90_ms,
                                          l.p99_ms, l.p999_ms, l.max_ms, l.mean_ms));
    if (open) {
      absl::StrAppend(&csv, absl::StrFormat(",%d,%d,%.3f,%d,%d,%d,%.4f,%d\n", o.scheduled, o.sent,
                                            o.sent_rate, o.late, o.delayed, o.dropped,
                                            o.max_send_lag_ms, o.max_outstanding));
    } else {
      absl::StrAppend(&csv, ",,,,,,,,\n");  // the open-loop columns
    }
  }
  return csv;
}

absl::Status WriteTextFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace cropshield::bench
