// `cropshield bench`: a load generator for Predict and Explain in the manner of Triton's
// perf_analyzer. It loads a set of photos once, then runs one measured step per concurrency level
// (closed loop, `--concurrency 1,8,64`) or per arrival rate (open loop with Poisson arrivals,
// `--rate 20,50`), printing a table row per step and writing JSON and CSV.
//
// Thread safety: RunBench blocks the calling thread until the run is over; run one at a time per
// process (it prints to stdout and stderr).
#ifndef CROPSHIELD_CLIENT_BENCH_BENCH_H_
#define CROPSHIELD_CLIENT_BENCH_BENCH_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cropshield/v1/cropshield.pb.h"
#include "grpcpp/channel.h"

namespace cropshield::client {

// What `cropshield bench` runs (its flags).
struct BenchOptions {
  std::string images;         // a photo file or a directory of photos
  std::string images_filter;  // glob on the file names in the directory; empty: every photo
  bool images_keep_greyscale = false;  // greyscale images are masks unless this is set
  std::string rpc = "predict";
  std::string concurrency;    // closed-loop levels "1,8,64"; empty: 1 (unless rate is set)
  std::string rate;           // open-loop rates in requests/s "20,50"; excludes concurrency
  int max_outstanding = 256;  // open loop: calls in flight at most
  uint64_t seed = 1;          // open loop: arrival schedule
  double duration_s = 10;     // measured seconds per step
  int64_t requests = 0;       // closed loop: > 0 measures this many calls per step instead
  double warmup_s = 2;        // unmeasured seconds of load before each step
  std::string json_path;      // results as JSON to this file
  std::string csv_path;       // one row per step to this file
  bool bypass_cache = false;
  int connections = 1;
  bool progress = true;
  int deadline_ms = 30000;
  int top_k = 3;
  v1::ModelSpec model;
};

// Runs the benchmark over `options.connections` channels made by `make_channel(i)` (each must open
// its own connection). Returns the process exit code: 0, 1 when calls failed (or a result file
// could not be written), 2 on bad options or when no photo could be loaded.
int RunBench(const std::function<std::shared_ptr<grpc::Channel>(int)>& make_channel,
             const BenchOptions& options);

}  // namespace cropshield::client

#endif  // CROPSHIELD_CLIENT_BENCH_BENCH_H_
