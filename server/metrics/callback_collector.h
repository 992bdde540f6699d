// A prometheus::Collectable whose samples are computed when Prometheus scrapes, for state that
// lives elsewhere and already has its own counters (cache statistics, queue depths, the loaded
// models, GPU memory): nothing is copied between scrapes.
//
// Declare each family once, then add sources. Every Collect() calls every source with a Sink;
// a source adds samples to any declared family, so one snapshot (one cache Stats() call) can feed
// several families. Samples of undeclared families are dropped, as are samples with invalid label
// names. Only counters and gauges can be declared: histograms belong in the prometheus::Registry.
//
// Thread-safety: Declare, AddSource and Collect may be called concurrently. Sources are called
// without the collector's lock, possibly from several scrapes at once: they must be thread-safe,
// and whatever they read must outlive the collector's registration (see MetricsRegistry).
#ifndef CROPSHIELD_SERVER_METRICS_CALLBACK_COLLECTOR_H_
#define CROPSHIELD_SERVER_METRICS_CALLBACK_COLLECTOR_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace cropshield::metrics {

class CallbackCollector : public prometheus::Collectable {
 public:
  using Labels = std::map<std::string, std::string>;

  // Receives the samples of one Collect().
  class Sink {
   public:
    // Adds a sample (the counter or gauge value, per the family's type) to family `name`.
    void Add(absl::string_view name, const Labels& labels, double value);

   private:
    friend class CallbackCollector;
    explicit Sink(absl::flat_hash_map<std::string, prometheus::MetricFamily>* families)
        : families_(families) {}
    absl::flat_hash_map<std::string, prometheus::MetricFamily>* families_;
  };
  using Source = std::function<void(Sink&)>;

  // INVALID_ARGUMENT for a bad name or a type other than counter, gauge or untyped;
  // ALREADY_EXISTS when `name` was declared before.
  absl::Status Declare(const std::string& name, const std::string& help,
                       prometheus::MetricType type);
  void AddSource(Source source);

  // Declared families with at least one sample, in declaration order.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable absl::Mutex mu_;
  std::vector<prometheus::MetricFamily> declared_ ABSL_GUARDED_BY(mu_);  // without samples
  std::vector<std::shared_ptr<const Source>> sources_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_CALLBACK_COLLECTOR_H_
