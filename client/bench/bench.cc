#include "client/bench/bench.h"

#include <iostream>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "client/bench/lists.h"
#include "client/bench/load_loops.h"
#include "client/bench/photo_set.h"
#include "client/bench/report.h"
#include "client/bench/rpc_caller.h"

namespace cropshield::client {
namespace {

using bench::StepResult;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// The steps to run: closed-loop levels or open-loop rates (one of the two is empty).
struct Plan {
  std::vector<int> levels;
  std::vector<double> rates;
};

absl::Status CheckOpenLoopOptions(const BenchOptions& o) {
  if (!o.concurrency.empty()) {
    return absl::InvalidArgumentError(
        "--rate (open loop) and --concurrency (closed loop) exclude each other; "
        "--max_outstanding bounds the calls in flight of an open loop");
  }
  if (o.requests > 0) {
    return absl::InvalidArgumentError("--requests is for the closed loop; --rate runs --duration");
  }
  if (!(o.duration_s > 0)) return absl::InvalidArgumentError("--rate needs --duration > 0");
  if (o.max_outstanding < 1) return absl::InvalidArgumentError("--max_outstanding must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<Plan> MakePlan(const BenchOptions& o) {
  if (o.rpc != "predict" && o.rpc != "explain") {
    return absl::InvalidArgumentError("--rpc must be predict or explain");
  }
  if (o.images.empty()) return absl::InvalidArgumentError("needs --images DIR|FILE");
  if (o.connections < 1) return absl::InvalidArgumentError("--connections must be >= 1");
  if (o.warmup_s < 0 || o.duration_s < 0) {
    return absl::InvalidArgumentError("--warmup and --duration must be >= 0");
  }
  Plan plan;
  if (!o.rate.empty()) {
    if (absl::Status status = CheckOpenLoopOptions(o); !status.ok()) return status;
    absl::StatusOr<std::vector<double>> rates = bench::ParseRateList(o.rate);
    if (!rates.ok()) return rates.status();
    plan.rates = *std::move(rates);
    return plan;
  }
  absl::StatusOr<std::vector<int>> levels =
      bench::ParseConcurrencyList(o.concurrency.empty() ? "1" : o.concurrency);
  if (!levels.ok()) return levels.status();
  plan.levels = *std::move(levels);
  return plan;
}

nlohmann::json SettingsJson(const BenchOptions& o, const Plan& plan) {
  return {{"rpc", o.rpc},
          {"mode", plan.rates.empty() ? "closed" : "open"},
          {"concurrency", plan.levels},
          {"rates", plan.rates},
          {"warmup_s", o.warmup_s},
          {"warmup", "before every step"},
          {"duration_s", o.duration_s},
          {"requests", o.requests},
          {"connections", o.connections},
          {"max_outstanding", o.max_outstanding},
          {"seed", o.seed},
          {"bypass_cache", o.bypass_cache},
          {"top_k", o.top_k},
          {"deadline_ms", o.deadline_ms},
          {"model_name", o.model.name()},
          {"model_version", o.model.version()},
          {"images_filter", o.images_filter},
          {"images_keep_greyscale", o.images_keep_greyscale}};
}

// Runs every step of `plan`, printing the table as it goes.
std::vector<StepResult> RunSteps(bench::RpcCaller& caller, const std::vector<bench::Photo>& photos,
                                 const BenchOptions& o, const Plan& plan) {
  const bench::StepWindow window{o.warmup_s, o.duration_s, o.requests, o.progress};
  const bool open = !plan.rates.empty();
  std::cout << bench::TableHeader(open ? "open" : "closed") << std::endl;
  std::vector<StepResult> steps;
  const size_t count = open ? plan.rates.size() : plan.levels.size();
  for (size_t i = 0; i < count; ++i) {
    StepResult step = open ? bench::RunOpenLoop(caller, photos,
                                                {plan.rates[i], o.max_outstanding, o.seed}, window)
                           : bench::RunClosedLoop(caller, photos, plan.levels[i], window);
    step.rpc = o.rpc;
    std::cout << bench::TableRow(step) << std::endl;
    if (std::string warning = bench::ScheduleWarning(step); !warning.empty()) {
      std::cerr << "bench: " << warning << "\n";
    }
    steps.push_back(std::move(step));
  }
  return steps;
}

// Writes the JSON and CSV files asked for; false when one could not be written.
bool WriteResults(const BenchOptions& o, const Plan& plan, const bench::PhotoSet& photos,
                  const std::vector<StepResult>& steps) {
  bool written = true;
  auto write = [&written](const std::string& path, const std::string& contents) {
    if (path.empty()) return;
    if (absl::Status status = bench::WriteTextFile(path, contents); !status.ok()) {
      std::cerr << "bench: " << status.message() << "\n";
      written = false;
    }
  };
  write(o.json_path, bench::ReportJson(SettingsJson(o, plan), photos, steps).dump(1) + "\n");
  write(o.csv_path, bench::ReportCsv(steps));
  return written;
}

}  // namespace

int RunBench(const std::function<std::shared_ptr<grpc::Channel>(int)>& make_channel,
             const BenchOptions& options) {
  absl::StatusOr<Plan> plan = MakePlan(options);
  if (!plan.ok()) {
    std::cerr << "bench: " << plan.status().message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<bench::PhotoSet> photos =
      bench::LoadPhotoSet({options.images, options.images_filter, options.images_keep_greyscale});
  if (!photos.ok()) {
    std::cerr << "bench: " << photos.status().message() << "\n";
    return kExitUsage;
  }
  for (const std::string& line : bench::DescribePhotoSet(*photos)) std::cout << line << "\n";
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < options.connections; ++i) channels.push_back(make_channel(i));
  bench::RpcCaller caller(channels, {options.rpc == "explain", options.bypass_cache, options.top_k,
                                     options.deadline_ms, options.model});
  const std::vector<StepResult> steps = RunSteps(caller, photos->photos, options, *plan);
  const bool written = WriteResults(options, *plan, *photos, steps);
  bool failed = false;
  for (const StepResult& step : steps) failed = failed || step.error_count() > 0;
  return failed || !written ? kExitFailed : kExitOk;
}

}  // namespace cropshield::client
