// Scrape-time families of the serving state: a CallbackCollector with these declared
//   cropshield_requests_in_flight                            gauge: calls accepted, not finished
//   cropshield_queue_depth{queue}                            gauge: tasks waiting in a queue
//   cropshield_queue_capacity{queue}                         gauge: most tasks that may wait
//   cropshield_cache_hits_total{cache}                       counter
//   cropshield_cache_misses_total{cache}                     counter
//   cropshield_cache_evictions_total{cache}                  counter: live entries dropped for room
//   cropshield_cache_expirations_total{cache}                counter: entries dropped by the TTL
//   cropshield_cache_inserts_total{cache}                    counter
//   cropshield_cache_entries{cache}                          gauge
//   cropshield_cache_bytes{cache}                            gauge: bytes charged for the entries
//   cropshield_cache_capacity_bytes{cache}                   gauge
//   cropshield_model_info{model,version,device,precision}    gauge, always 1, per served model
//   cropshield_model_load_seconds{model,version}             gauge: load and checks
//   cropshield_model_warmup_seconds{model,version}           gauge: optimisation and warm-up
//   cropshield_gpu_memory_allocated_bytes{device}            gauge: CUDA caching allocator, in use
//   cropshield_gpu_memory_reserved_bytes{device}             gauge: CUDA caching allocator, held
//   cropshield_model_loads_total{trigger,result}             counter: model loads (startup, rpc,
//                                                            watch) that succeeded or failed
//   cropshield_model_last_load_success                       gauge: 1 when the last load worked
//   cropshield_model_last_load_timestamp_seconds             gauge: Unix time of the last load
//   cropshield_idle_memory_releases_total                    counter: heap memory handed back to
//                                                            the OS after an idle period
// and typed Add* methods for the components that own the state. A family with no source (or
// whose sources give no samples, like GPU memory on CPU) is left out of the exposition.
//
// Thread-safety: as CallbackCollector: the read functions are called on scrape threads and must be
// thread-safe; what they read must outlive the collector's MetricsRegistry::Registration.
#ifndef CROPSHIELD_SERVER_METRICS_STATE_COLLECTOR_H_
#define CROPSHIELD_SERVER_METRICS_STATE_COLLECTOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "server/metrics/callback_collector.h"

namespace cropshield::metrics {

class StateCollector : public CallbackCollector {
 public:
  struct CacheCounters {
    int64_t hits = 0;
    int64_t misses = 0;
    int64_t evictions = 0;
    int64_t expirations = 0;
    int64_t inserts = 0;
    int64_t entries = 0;
    int64_t bytes = 0;
    int64_t capacity_bytes = 0;
  };
  struct ModelInfo {
    std::string name;
    int64_t version = 0;
    std::string device;
    std::string precision;
    double load_seconds = 0;
    double warmup_seconds = 0;
  };
  struct GpuMemory {
    std::string device;  // e.g. "cuda:0"
    double allocated_bytes = 0;
    double reserved_bytes = 0;
  };

  struct ModelLoads {
    struct Count {
      std::string trigger;  // "startup", "rpc", "watch"
      std::string result;   // "ok", "error"
      double count = 0;
    };
    std::vector<Count> counts;
    bool last_ok = true;
    double last_finished_unix_seconds = 0;
  };

  StateCollector();

  void AddInFlight(std::function<double()> read);
  void AddQueue(const std::string& queue, double capacity, std::function<double()> depth);
  void AddCache(const std::string& cache, std::function<CacheCounters()> read);
  void AddModels(std::function<std::vector<ModelInfo>()> read);
  void AddGpuMemory(std::function<std::vector<GpuMemory>()> read);
  void AddModelLoads(std::function<ModelLoads()> read);
  void AddIdleMemoryReleases(std::function<double()> read);
};

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_STATE_COLLECTOR_H_
