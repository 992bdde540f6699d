// `cropshield bench`: an asynchronous closed-loop load generator for Predict and Explain.
#ifndef CROPSHIELD_CLIENT_BENCH_H_
#define CROPSHIELD_CLIENT_BENCH_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/channel.h"

namespace cropshield::client {

// Runs the benchmark described by the bench flags over --connections channels made by
// `make_channel(i)` (each must open its own connection); `args` are the positional arguments after
// "bench" (unused: images come from --images). Returns the process exit code.
int RunBench(const std::function<std::shared_ptr<grpc::Channel>(int)>& make_channel,
             const std::vector<std::string>& args);

}  // namespace cropshield::client

#endif  // CROPSHIELD_CLIENT_BENCH_H_
