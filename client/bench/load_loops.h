// The two ways `cropshield bench` loads a server, one measured step each:
//  - closed loop: `concurrency` callers, each sending its next call when the previous one returns;
//    latency from each call's send;
//  - open loop: calls sent on a Poisson schedule at `rate` per second whether or not earlier ones
//    have returned (up to `max_outstanding` in flight); latency from each call's *scheduled* time,
//    so a server (or a load generator) that falls behind shows in the percentiles instead of
//    silently lowering the offered load (coordinated omission).
// Both warm up for `warmup_s` (calls sent, not measured), then measure for `duration_s` (closed
// loop: or `requests` calls), then wait for the measured calls still in flight.
//
// Thread safety: each function runs one step on the calling thread (which blocks until the step
// is over) and gRPC's callback threads; run one step at a time per RpcCaller.
#ifndef CROPSHIELD_CLIENT_BENCH_LOAD_LOOPS_H_
#define CROPSHIELD_CLIENT_BENCH_LOAD_LOOPS_H_

#include <cstdint>
#include <vector>

#include "client/bench/photo_set.h"
#include "client/bench/rpc_caller.h"
#include "client/bench/step_result.h"

namespace cropshield::bench {

struct StepWindow {
  double warmup_s = 2;
  double duration_s = 10;
  int64_t requests = 0;  // closed loop: > 0 measures this many calls instead of duration_s
  bool progress = true;  // a progress line on stderr
};

// `photos` non-empty, `concurrency` >= 1.
StepResult RunClosedLoop(RpcCaller& caller, const std::vector<Photo>& photos, int concurrency,
                         const StepWindow& window);

struct OpenLoopSpec {
  double rate = 1;  // requests per second, > 0
  int max_outstanding = 256;
  uint64_t seed = 1;
};

// `photos` non-empty. window.requests is not used.
StepResult RunOpenLoop(RpcCaller& caller, const std::vector<Photo>& photos,
                       const OpenLoopSpec& spec, const StepWindow& window);

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_LOAD_LOOPS_H_
