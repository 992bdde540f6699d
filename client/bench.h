// `cropshield bench`: an asynchronous closed-loop load generator for Predict and Explain.
#ifndef CROPSHIELD_CLIENT_BENCH_H_
#define CROPSHIELD_CLIENT_BENCH_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cropshield/v1/cropshield.pb.h"
#include "grpcpp/channel.h"

namespace cropshield::client {

// What `cropshield bench` runs (its flags).
struct BenchOptions {
  std::string images;  // an image file or a directory of .jpg/.jpeg/.png/.webp files
  std::string rpc = "predict";
  int concurrency = 1;
  double duration_s = 10;
  int64_t requests = 0;  // > 0: measure this many calls instead of duration_s
  double warmup_s = 2;
  std::string json_path;  // results as JSON to this file
  bool bypass_cache = false;
  int connections = 1;
  bool progress = true;
  int deadline_ms = 30000;
  int top_k = 3;
  v1::ModelSpec model;
};

// Runs the benchmark over `options.connections` channels made by `make_channel(i)` (each must open
// its own connection). Returns the process exit code: 0, 1 when calls failed, 2 on bad options.
int RunBench(const std::function<std::shared_ptr<grpc::Channel>(int)>& make_channel,
             const BenchOptions& options);

}  // namespace cropshield::client

#endif  // CROPSHIELD_CLIENT_BENCH_H_
