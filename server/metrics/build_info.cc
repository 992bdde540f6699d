#include "server/metrics/build_info.h"

#include <utility>

#include "prometheus/metric_type.h"

// Set for this file by server/metrics/CMakeLists.txt.
#ifndef CROPSHIELD_VERSION
#define CROPSHIELD_VERSION "unknown"
#endif
#ifndef CROPSHIELD_GIT_REVISION
#define CROPSHIELD_GIT_REVISION "unknown"
#endif

namespace cropshield::metrics {
namespace {

constexpr char kName[] = "cropshield_build_info";

std::string OrUnknown(std::string value) { return value.empty() ? "unknown" : std::move(value); }

}  // namespace

BuildInfo CompiledBuildInfo() {
  BuildInfo info;
  info.version = CROPSHIELD_VERSION;
  info.revision = CROPSHIELD_GIT_REVISION;
  return info;
}

std::shared_ptr<CallbackCollector> MakeBuildInfoCollector(BuildInfo info) {
  auto collector = std::make_shared<CallbackCollector>();
  // A constant, valid name declared once: cannot fail.
  (void)collector->Declare(kName,
                           "Always 1; the labels say which build runs: version, git revision, "
                           "libtorch version and the device models load on.",
                           prometheus::MetricType::Gauge);
  const CallbackCollector::Labels labels = {
      {"version", OrUnknown(std::move(info.version))},
      {"revision", OrUnknown(std::move(info.revision))},
      {"torch_version", OrUnknown(std::move(info.torch_version))},
      {"device", OrUnknown(std::move(info.device))}};
  collector->AddSource([labels](CallbackCollector::Sink& sink) { sink.Add(kName, labels, 1); });
  return collector;
}

}  // namespace cropshield::metrics
