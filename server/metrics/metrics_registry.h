// The server's metrics: a prometheus::Registry for instruments updated as things happen (counters,
// gauges, histograms), plus collectables that read state at scrape time (process statistics,
// cache and queue state, loaded models). The server owns one MetricsRegistry and hands it to the
// components that record or expose metrics; there is no global registry.
//
// Collect() merges families of the same name and type coming from different sources (so two
// collectables may contribute samples of one family) and drops empty families; a family whose
// name repeats with another type is dropped (first one wins).
//
// Thread-safety: every method may be called from any thread. Collect() holds a lock while it calls
// the collectables; a Registration's destructor takes that lock, so once it returns its
// collectable is neither being called nor called again. A collectable's Collect() must not add or
// remove registrations of the same MetricsRegistry.
#ifndef CROPSHIELD_SERVER_METRICS_METRICS_REGISTRY_H_
#define CROPSHIELD_SERVER_METRICS_METRICS_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace cropshield::metrics {

// Content type of the text exposition format that SerializeText produces.
inline constexpr char kTextFormatContentType[] = "text/plain; version=0.0.4; charset=utf-8";

class MetricsRegistry {
 public:
  // Keeps a collectable registered while alive (movable, not copyable).
  class Registration {
   public:
    Registration() = default;
    Registration(Registration&& other) noexcept;
    Registration& operator=(Registration&& other) noexcept;
    Registration(const Registration&) = delete;
    Registration& operator=(const Registration&) = delete;
    ~Registration() { Reset(); }

    // Unregisters now (waits for a Collect() in progress). Idempotent.
    void Reset();

   private:
    friend class MetricsRegistry;
    Registration(MetricsRegistry* owner, uint64_t id) : owner_(owner), id_(id) {}
    MetricsRegistry* owner_ = nullptr;
    uint64_t id_ = 0;
  };

  MetricsRegistry();
  // Every Registration must have been reset or destroyed before.
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Where instruments are built (prometheus::BuildCounter()...Register(registry())).
  prometheus::Registry& registry() { return *registry_; }

  // Adds a collectable read on every Collect() until the returned Registration goes away.
  [[nodiscard]] Registration Add(std::shared_ptr<const prometheus::Collectable> collectable);

  // The registry's families, then the collectables' in registration order, merged as above.
  std::vector<prometheus::MetricFamily> Collect() const;

  // Collect() in the Prometheus text exposition format 0.0.4.
  std::string SerializeText() const;

 private:
  void Remove(uint64_t id);

  const std::shared_ptr<prometheus::Registry> registry_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::pair<uint64_t, std::shared_ptr<const prometheus::Collectable>>> collectables_
      ABSL_GUARDED_BY(mu_);
};

// Merges families as Collect() does: same name and type are concatenated (in order), empty ones
// are dropped, a name seen again with another type is dropped.
std::vector<prometheus::MetricFamily> MergeFamilies(std::vector<prometheus::MetricFamily> families);

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_METRICS_REGISTRY_H_
