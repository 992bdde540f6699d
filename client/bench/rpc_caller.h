// Issues one asynchronous Predict or Explain call at a time on behalf of the load loops, spread
// round-robin over the benchmark's connections.
//
// Thread safety: Call may be invoked from any number of threads at once (the closed loop issues its
// next call from gRPC's callback threads). The caller must outlive the calls it starts only until
// they have begun: a call's state is owned by the call and freed after its `done` returns.
#ifndef CROPSHIELD_CLIENT_BENCH_RPC_CALLER_H_
#define CROPSHIELD_CLIENT_BENCH_RPC_CALLER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cropshield/v1/cropshield.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace cropshield::bench {

struct RpcSettings {
  bool explain = false;  // Explain instead of Predict
  bool bypass_cache = false;
  int top_k = 3;
  int deadline_ms = 30000;
  v1::ModelSpec model;
};

class RpcCaller {
 public:
  RpcCaller(const std::vector<std::shared_ptr<grpc::Channel>>& channels, RpcSettings settings);

  // Sends `photo` (copied into the request) and runs `done` with the call's status on a gRPC
  // thread when the reply arrives.
  void Call(const std::string& photo, std::function<void(const grpc::Status&)> done);

 private:
  const RpcSettings settings_;
  std::vector<std::unique_ptr<v1::CropShieldService::Stub>> stubs_;
  std::atomic<uint64_t> next_stub_{0};
};

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_RPC_CALLER_H_
