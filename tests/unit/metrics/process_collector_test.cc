#include "server/metrics/process_collector.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cropshield::metrics {
namespace {

using ::testing::ElementsAre;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A /proc/<pid>/stat line with a command name that contains ") (" and spaces.
constexpr char kStat[] =
    "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 2000 0 3 0 150 50 0 0 20 0 7 0 123456 "
    "987654321 2500 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ParseProcStatTest, ReadsFieldsAfterTheCommandName) {
  absl::StatusOr<ProcStat> stat = ParseProcStat(kStat);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_EQ(stat->utime_ticks, 150);
  EXPECT_EQ(stat->stime_ticks, 50);
  EXPECT_EQ(stat->threads, 7);
  EXPECT_EQ(stat->start_ticks, 123456);
  EXPECT_EQ(stat->vsize_bytes, 987654321);
  EXPECT_EQ(stat->rss_pages, 2500);
}

TEST(ParseProcStatTest, RejectsTruncatedOrGarbledLines) {
  EXPECT_FALSE(ParseProcStat("").ok());
  EXPECT_FALSE(ParseProcStat("1 (x) S 1 2 3").ok());
  EXPECT_FALSE(ParseProcStat("no parentheses at all 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15").ok());
  std::string garbled = kStat;
  garbled.replace(garbled.find(" 150 "), 5, " 1x0 ");
  EXPECT_FALSE(ParseProcStat(garbled).ok());
}

TEST(ParseBootTimeTest, FindsBtime) {
  EXPECT_EQ(*ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"), 1700000000);
  EXPECT_FALSE(ParseBootTime("cpu 1 2 3\n").ok());
}

TEST(ParseMaxOpenFilesTest, ReadsTheSoftLimit) {
  const char* limits =
      "Limit                     Soft Limit           Hard Limit           Units     \n"
      "Max cpu time              unlimited            unlimited            seconds   \n"
      "Max open files            1024                 524288               files     \n";
  EXPECT_EQ(**ParseMaxOpenFiles(limits), 1024);
  EXPECT_FALSE(ParseMaxOpenFiles("Max open files            unlimited            unlimited  files")
                   ->has_value());
  EXPECT_FALSE(ParseMaxOpenFiles("Max cpu time 1 2 seconds\n").ok());
}

TEST(ProcessCollectorTest, LiveValuesAreSane) {
  ProcessCollector collector;
  const ProcessStats stats = collector.Read();
  ASSERT_TRUE(stats.cpu_seconds.has_value());
  ASSERT_TRUE(stats.resident_memory_bytes.has_value());
  ASSERT_TRUE(stats.virtual_memory_bytes.has_value());
  ASSERT_TRUE(stats.start_time_seconds.has_value());
  ASSERT_TRUE(stats.open_fds.has_value());
  ASSERT_TRUE(stats.max_fds.has_value());
  ASSERT_TRUE(stats.threads.has_value());
  EXPECT_GE(*stats.cpu_seconds, 0);
  EXPECT_GT(*stats.resident_memory_bytes, 1 << 20);  // a gtest binary is at least 1 MiB resident
  EXPECT_GE(*stats.virtual_memory_bytes, *stats.resident_memory_bytes);
  // Started within the last day, not in the future (boot time and ticks have 1 s / 10 ms grain).
  EXPECT_LE(*stats.start_time_seconds, NowSeconds() + 2);
  EXPECT_GT(*stats.start_time_seconds, NowSeconds() - 86400);
  EXPECT_GE(*stats.open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GE(*stats.max_fds, *stats.open_fds);
  EXPECT_GE(*stats.threads, 1);
}

TEST(ProcessCollectorTest, OpenFdsCountsExactlyTheDescriptorsWeOpen) {
  ProcessCollector collector;
  const double before = *collector.Read().open_fds;
  std::vector<int> fds;
  for (int i = 0; i < 5; ++i) fds.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(*collector.Read().open_fds, before + 5);
  for (int fd : fds) close(fd);
  EXPECT_EQ(*collector.Read().open_fds, before);
}

TEST(ProcessCollectorTest, CpuSecondsGrowWithWork) {
  ProcessCollector collector;
  const double before = *collector.Read().cpu_seconds;
  const auto start = std::chrono::steady_clock::now();
  volatile double sink = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(300)) {
    for (int i = 0; i < 10000; ++i) sink = sink + std::sqrt(static_cast<double>(i));
  }
  // 300 ms of wall time spinning; even on a loaded machine we get a good part of it.
  EXPECT_GT(*collector.Read().cpu_seconds, before + 0.02);
}

TEST(ProcessCollectorTest, ResidentMemoryFollowsATouchedAllocation) {
  ProcessCollector collector;
  const double before = *collector.Read().resident_memory_bytes;
  constexpr size_t kBytes = 64 << 20;
  char* block = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(block, nullptr);
  for (size_t i = 0; i < kBytes; i += 4096) block[i] = static_cast<char>(i);
  EXPECT_GT(*collector.Read().resident_memory_bytes, before + (48 << 20));
  std::free(block);
}

TEST(ProcessCollectorTest, CollectsStandardFamiliesAndSkipsWhatCannotBeRead) {
  ProcessCollector collector;
  std::vector<std::string> names;
  for (const auto& family : collector.Collect()) {
    names.push_back(family.name);
    ASSERT_EQ(family.metric.size(), 1u) << family.name;
  }
  EXPECT_THAT(names, ElementsAre("process_cpu_seconds_total", "process_resident_memory_bytes",
                                 "process_virtual_memory_bytes", "process_start_time_seconds",
                                 "process_open_fds", "process_max_fds", "process_threads"));

  ProcessCollector::Options missing;
  missing.proc_dir = "/nonexistent/proc/self";
  missing.proc_stat_path = "/nonexistent/stat";
  EXPECT_TRUE(ProcessCollector(missing).Collect().empty());
}

TEST(ProcessCollectorTest, ReadsAnotherProcDirectory) {
  // A fake /proc/<pid> tree: the collector only reads stat, fd/ and limits.
  const std::string dir = ::testing::TempDir() + "/fake_proc_" + std::to_string(getpid());
  ASSERT_EQ(system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir, "/fd && touch ", dir,
                                "/fd/0 ", dir, "/fd/1")
                       .c_str()),
            0);
  std::ofstream(dir + "/stat") << kStat;
  std::ofstream(dir + "/limits") << "Max open files            4096    8192    files\n";
  std::ofstream(dir + "/proc_stat") << "btime 1000\n";
  ProcessCollector::Options options;
  options.proc_dir = dir;
  options.proc_stat_path = dir + "/proc_stat";
  const ProcessStats stats = ProcessCollector(options).Read();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(*stats.cpu_seconds, 200 / ticks);
  EXPECT_DOUBLE_EQ(*stats.resident_memory_bytes, 2500.0 * sysconf(_SC_PAGESIZE));
  EXPECT_DOUBLE_EQ(*stats.virtual_memory_bytes, 987654321);
  EXPECT_DOUBLE_EQ(*stats.start_time_seconds, 1000 + 123456 / ticks);
  EXPECT_EQ(*stats.open_fds, 2);
  EXPECT_EQ(*stats.max_fds, 4096);
  EXPECT_EQ(*stats.threads, 7);
  system(absl::StrCat("rm -rf ", dir).c_str());
}

}  // namespace
}  // namespace cropshield::metrics
