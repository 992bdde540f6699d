// cropshield_build_info{version,revision,torch_version,device} 1: what is running, for dashboards
// and alerts that compare replicas (a rollout half done, a CPU fallback), in the usual Prometheus
// *_build_info shape (always 1; the information is in the labels).
//
// Thread-safety: the collector is immutable after creation; Collect() may run on any thread.
#ifndef CROPSHIELD_SERVER_METRICS_BUILD_INFO_H_
#define CROPSHIELD_SERVER_METRICS_BUILD_INFO_H_

#include <memory>
#include <string>

#include "server/metrics/callback_collector.h"

namespace cropshield::metrics {

struct BuildInfo {
  std::string version;   // the CMake project version
  std::string revision;  // `git rev-parse --short HEAD` at configure time; "unknown" outside git
  std::string torch_version;  // libtorch's TORCH_VERSION (engine::TorchVersion())
  std::string device;         // the device models load on, e.g. "cpu", "cuda:0"
};

// Version and revision of this binary, as compiled; torch_version and device left empty.
BuildInfo CompiledBuildInfo();

// A collector with the one cropshield_build_info series; empty labels read "unknown".
std::shared_ptr<CallbackCollector> MakeBuildInfoCollector(BuildInfo info);

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_BUILD_INFO_H_
