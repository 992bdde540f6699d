#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace cropshield::metrics {
namespace {

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

// Entries of `fd_dir` other than "." and ".."; the descriptor that lists the directory is not
// counted when `fd_dir` lists this process's own descriptors.
std::optional<double> CountOpenFds(const std::string& fd_dir) {
  DIR* dir = opendir(fd_dir.c_str());
  if (dir == nullptr) return std::nullopt;
  const std::string own = absl::StrCat(dirfd(dir));
  const bool self = fd_dir == "/proc/self/fd" || fd_dir == absl::StrCat("/proc/", getpid(), "/fd");
  double count = 0;
  while (dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    if (self && name == own) continue;
    ++count;
  }
  closedir(dir);
  return count;
}

prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(absl::string_view stat) {
  // "pid (comm) state ppid ...": comm may contain anything, so fields restart after the last ')'.
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos) {
    return absl::InvalidArgumentError("stat has no command name in parentheses");
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(stat.substr(close + 1), absl::ByAnyChar(" \n"), absl::SkipEmpty());
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  constexpr int kFirst = 3;
  auto field = [&](int number, int64_t* out) {
    const size_t index = static_cast<size_t>(number - kFirst);
    return index < fields.size() && absl::SimpleAtoi(fields[index], out);
  };
  ProcStat parsed;
  if (!field(14, &parsed.utime_ticks) || !field(15, &parsed.stime_ticks) ||
      !field(20, &parsed.threads) || !field(22, &parsed.start_ticks) ||
      !field(23, &parsed.vsize_bytes) || !field(24, &parsed.rss_pages)) {
    return absl::InvalidArgumentError("stat has too few or non-numeric fields");
  }
  return parsed;
}

absl::StatusOr<int64_t> ParseBootTime(absl::string_view proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    if (!absl::ConsumePrefix(&line, "btime ")) continue;
    int64_t seconds = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &seconds)) return seconds;
    break;
  }
  return absl::InvalidArgumentError("no btime line in /proc/stat");
}

absl::StatusOr<std::optional<int64_t>> ParseMaxOpenFiles(absl::string_view limits) {
  for (absl::string_view line : absl::StrSplit(limits, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> values = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (values.empty()) break;
    if (values[0] == "unlimited") return std::optional<int64_t>();
    int64_t soft = 0;
    if (absl::SimpleAtoi(values[0], &soft)) return std::optional<int64_t>(soft);
    break;
  }
  return absl::InvalidArgumentError("no 'Max open files' line in limits");
}

ProcessCollector::ProcessCollector(Options options)
    : options_(std::move(options)),
      ticks_per_second_(static_cast<double>(sysconf(_SC_CLK_TCK))),
      page_bytes_(static_cast<double>(sysconf(_SC_PAGESIZE))) {
  if (std::optional<std::string> proc_stat = ReadWholeFile(options_.proc_stat_path)) {
    absl::StatusOr<int64_t> boot = ParseBootTime(*proc_stat);
    if (boot.ok()) boot_time_seconds_ = static_cast<double>(*boot);
  }
}

ProcessStats ProcessCollector::Read() const {
  ProcessStats stats;
  if (std::optional<std::string> text = ReadWholeFile(options_.proc_dir + "/stat")) {
    absl::StatusOr<ProcStat> stat = ParseProcStat(*text);
    if (stat.ok() && ticks_per_second_ > 0) {
      stats.cpu_seconds =
          static_cast<double>(stat->utime_ticks + stat->stime_ticks) / ticks_per_second_;
      stats.resident_memory_bytes = static_cast<double>(stat->rss_pages) * page_bytes_;
      stats.virtual_memory_bytes = static_cast<double>(stat->vsize_bytes);
      stats.threads = static_cast<double>(stat->threads);
      if (boot_time_seconds_.has_value()) {
        stats.start_time_seconds =
            *boot_time_seconds_ + static_cast<double>(stat->start_ticks) / ticks_per_second_;
      }
    }
  }
  stats.open_fds = CountOpenFds(options_.proc_dir + "/fd");
  if (std::optional<std::string> limits = ReadWholeFile(options_.proc_dir + "/limits")) {
    absl::StatusOr<std::optional<int64_t>> max_fds = ParseMaxOpenFiles(*limits);
    if (max_fds.ok() && max_fds->has_value()) stats.max_fds = static_cast<double>(**max_fds);
  }
  return stats;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const ProcessStats stats = Read();
  std::vector<prometheus::MetricFamily> families;
  auto add = [&families](const char* name, const char* help, prometheus::MetricType type,
                         const std::optional<double>& value) {
    if (value.has_value()) families.push_back(Family(name, help, type, *value));
  };
  using prometheus::MetricType;
  add("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
      MetricType::Counter, stats.cpu_seconds);
  add("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
      stats.resident_memory_bytes);
  add("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
      stats.virtual_memory_bytes);
  add("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
      MetricType::Gauge, stats.start_time_seconds);
  add("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, stats.open_fds);
  add("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
      stats.max_fds);
  add("process_threads", "Number of OS threads in the process.", MetricType::Gauge, stats.threads);
  return families;
}

}  // namespace cropshield::metrics
