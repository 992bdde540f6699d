#include "server/metrics/state_collector.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace cropshield::metrics {
namespace {

using prometheus::MetricType;

struct FamilySpec {
  const char* name;
  const char* help;
  MetricType type;
};

constexpr FamilySpec kFamilies[] = {
    {"cropshield_requests_in_flight", "Calls accepted and not yet finished.", MetricType::Gauge},
    {"cropshield_queue_depth", "Tasks waiting in a queue.", MetricType::Gauge},
    {"cropshield_queue_capacity", "Most tasks that may wait in a queue; more are rejected.",
     MetricType::Gauge},
    {"cropshield_cache_hits_total", "Cache lookups that found a live entry.", MetricType::Counter},
    {"cropshield_cache_misses_total",
     "Cache lookups that found none (single-flight leaders and followers).", MetricType::Counter},
    {"cropshield_cache_evictions_total", "Live cache entries dropped to make room.",
     MetricType::Counter},
    {"cropshield_cache_expirations_total", "Cache entries dropped because their TTL passed.",
     MetricType::Counter},
    {"cropshield_cache_inserts_total", "Entries stored in the cache.", MetricType::Counter},
    {"cropshield_cache_entries", "Entries in the cache.", MetricType::Gauge},
    {"cropshield_cache_bytes", "Bytes charged for the entries in the cache.", MetricType::Gauge},
    {"cropshield_cache_capacity_bytes", "Byte budget of the cache.", MetricType::Gauge},
    {"cropshield_model_info", "Served model; the value is always 1.", MetricType::Gauge},
    {"cropshield_model_load_seconds", "Seconds spent loading and checking the model.",
     MetricType::Gauge},
    {"cropshield_model_warmup_seconds", "Seconds spent optimising and warming up the model.",
     MetricType::Gauge},
    {"cropshield_gpu_memory_allocated_bytes",
     "GPU memory occupied by tensors (CUDA caching allocator).", MetricType::Gauge},
    {"cropshield_gpu_memory_reserved_bytes",
     "GPU memory held by the CUDA caching allocator (allocated plus cached).", MetricType::Gauge},
    {"cropshield_model_loads_total", "Model loads by trigger (startup, rpc, watch) and result.",
     MetricType::Counter},
    {"cropshield_model_last_load_success", "1 when the most recent model load succeeded, else 0.",
     MetricType::Gauge},
    {"cropshield_model_last_load_timestamp_seconds",
     "Unix time when the most recent model load finished.", MetricType::Gauge},
    {"cropshield_idle_memory_releases_total",
     "Times the heap's free memory was handed back to the OS after an idle period.",
     MetricType::Counter},
};

}  // namespace

StateCollector::StateCollector() {
  // Constant, valid and distinct names: Declare cannot fail here.
  for (const FamilySpec& family : kFamilies) (void)Declare(family.name, family.help, family.type);
}

void StateCollector::AddInFlight(std::function<double()> read) {
  AddSource([read = std::move(read)](Sink& sink) {
    sink.Add("cropshield_requests_in_flight", {}, read());
  });
}

void StateCollector::AddQueue(const std::string& queue, double capacity,
                              std::function<double()> depth) {
  AddSource([queue, capacity, depth = std::move(depth)](Sink& sink) {
    sink.Add("cropshield_queue_depth", {{"queue", queue}}, depth());
    sink.Add("cropshield_queue_capacity", {{"queue", queue}}, capacity);
  });
}

void StateCollector::AddCache(const std::string& cache, std::function<CacheCounters()> read) {
  AddSource([cache, read = std::move(read)](Sink& sink) {
    const CacheCounters c = read();
    const Labels labels = {{"cache", cache}};
    sink.Add("cropshield_cache_hits_total", labels, static_cast<double>(c.hits));
    sink.Add("cropshield_cache_misses_total", labels, static_cast<double>(c.misses));
    sink.Add("cropshield_cache_evictions_total", labels, static_cast<double>(c.evictions));
    sink.Add("cropshield_cache_expirations_total", labels, static_cast<double>(c.expirations));
    sink.Add("cropshield_cache_inserts_total", labels, static_cast<double>(c.inserts));
    sink.Add("cropshield_cache_entries", labels, static_cast<double>(c.entries));
    sink.Add("cropshield_cache_bytes", labels, static_cast<double>(c.bytes));
    sink.Add("cropshield_cache_capacity_bytes", labels, static_cast<double>(c.capacity_bytes));
  });
}

void StateCollector::AddModels(std::function<std::vector<ModelInfo>()> read) {
  AddSource([read = std::move(read)](Sink& sink) {
    for (const ModelInfo& model : read()) {
      const std::string version = absl::StrCat(model.version);
      sink.Add("cropshield_model_info",
               {{"model", model.name},
                {"version", version},
                {"device", model.device},
                {"precision", model.precision}},
               1);
      sink.Add("cropshield_model_load_seconds", {{"model", model.name}, {"version", version}},
               model.load_seconds);
      sink.Add("cropshield_model_warmup_seconds", {{"model", model.name}, {"version", version}},
               model.warmup_seconds);
    }
  });
}

void StateCollector::AddGpuMemory(std::function<std::vector<GpuMemory>()> read) {
  AddSource([read = std::move(read)](Sink& sink) {
    for (const GpuMemory& gpu : read()) {
      sink.Add("cropshield_gpu_memory_allocated_bytes", {{"device", gpu.device}},
               gpu.allocated_bytes);
      sink.Add("cropshield_gpu_memory_reserved_bytes", {{"device", gpu.device}},
               gpu.reserved_bytes);
    }
  });
}

void StateCollector::AddModelLoads(std::function<ModelLoads()> read) {
  AddSource([read = std::move(read)](Sink& sink) {
    const ModelLoads loads = read();
    for (const ModelLoads::Count& count : loads.counts) {
      sink.Add("cropshield_model_loads_total",
               {{"trigger", count.trigger}, {"result", count.result}}, count.count);
    }
    if (loads.last_finished_unix_seconds > 0) {
      sink.Add("cropshield_model_last_load_success", {}, loads.last_ok ? 1 : 0);
      sink.Add("cropshield_model_last_load_timestamp_seconds", {},
               loads.last_finished_unix_seconds);
    }
  });
}

void StateCollector::AddIdleMemoryReleases(std::function<double()> read) {
  AddSource([read = std::move(read)](Sink& sink) {
    sink.Add("cropshield_idle_memory_releases_total", {}, read());
  });
}

}  // namespace cropshield::metrics
