// Standard process metrics read from /proc at scrape time (prometheus-cpp has no process
// collector). The names are the ones every official Prometheus client library exports, without
// the cropshield_ prefix, so that generic dashboards and alerts work unchanged:
//   process_cpu_seconds_total        user + system CPU time
//   process_resident_memory_bytes    resident set size
//   process_virtual_memory_bytes     virtual memory size
//   process_start_time_seconds       start time since the Unix epoch
//   process_open_fds                 open file descriptors
//   process_max_fds                  soft limit on open file descriptors
//   process_threads                  threads of the process
// A value that cannot be read (missing /proc, parse error) is left out of that scrape.
//
// Thread-safety: Read and Collect may be called concurrently (they only read files).
#ifndef CROPSHIELD_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define CROPSHIELD_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace cropshield::metrics {

// The fields of /proc/<pid>/stat that the collector uses (see proc(5)).
struct ProcStat {
  int64_t utime_ticks = 0;  // field 14, clock ticks
  int64_t stime_ticks = 0;  // field 15
  int64_t threads = 0;      // field 20
  int64_t start_ticks = 0;  // field 22, clock ticks after boot
  int64_t vsize_bytes = 0;  // field 23
  int64_t rss_pages = 0;    // field 24
};

// Parses the one line of /proc/<pid>/stat; the command name (field 2) may hold spaces and
// parentheses. INVALID_ARGUMENT when fields are missing or not numbers.
absl::StatusOr<ProcStat> ParseProcStat(absl::string_view stat);

// The "btime" line of /proc/stat: boot time in seconds since the Unix epoch.
absl::StatusOr<int64_t> ParseBootTime(absl::string_view proc_stat);

// The soft limit of "Max open files" in /proc/<pid>/limits; nullopt for "unlimited".
absl::StatusOr<std::optional<int64_t>> ParseMaxOpenFiles(absl::string_view limits);

struct ProcessStats {
  std::optional<double> cpu_seconds;
  std::optional<double> resident_memory_bytes;
  std::optional<double> virtual_memory_bytes;
  std::optional<double> start_time_seconds;
  std::optional<double> open_fds;
  std::optional<double> max_fds;
  std::optional<double> threads;
};

class ProcessCollector : public prometheus::Collectable {
 public:
  struct Options {
    std::string proc_dir = "/proc/self";        // the process's directory
    std::string proc_stat_path = "/proc/stat";  // for the boot time
  };

  ProcessCollector() : ProcessCollector(Options()) {}
  explicit ProcessCollector(Options options);

  ProcessStats Read() const;
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Options options_;
  const double ticks_per_second_;
  const double page_bytes_;
  std::optional<double> boot_time_seconds_;  // read once: it does not change
};

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_PROCESS_COLLECTOR_H_
