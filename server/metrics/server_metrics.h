// The instruments the RPC layer records into, built in a prometheus::Registry (normally a
// MetricsRegistry's). Families:
//   cropshield_requests_total{rpc,code}            counter: finished calls
//   cropshield_request_errors_total{rpc,code}      counter: finished calls whose code is not OK
//   cropshield_request_duration_seconds{rpc,code}  histogram: accepted -> finished, on the server
//   cropshield_stage_duration_seconds{model,stage} histogram: stages of a call; stage is decode,
//                                                  preprocess, queue, inference, explain or encode
//                                                  (stages.h)
//   cropshield_batch_size{batcher}                 histogram: requests computed in one forward
//   cropshield_queue_rejected_total{queue}         counter: submissions refused by a full queue
// `code` is the canonical gRPC status name ("OK", "INVALID_ARGUMENT", ...). Durations use
// LatencyBuckets(): 100 us to 10 s. Series for the RPCs and queues named in the options exist (at
// zero) from the start, so rates and ratios are defined before the first call.
//
// Thread-safety: every method may be called concurrently. Recording is lock-free for the
// prometheus-cpp instruments; series are looked up under a reader lock and created once.
#ifndef CROPSHIELD_SERVER_METRICS_SERVER_METRICS_H_
#define CROPSHIELD_SERVER_METRICS_SERVER_METRICS_H_

#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics/stages.h"

namespace cropshield::v1 {
class Timing;
}

namespace cropshield::metrics {

class ServerMetrics {
 public:
  using Stage = metrics::Stage;

  struct Options {
    std::vector<std::string> rpcs;      // requests/duration series with code="OK" start at zero
    std::vector<std::string> queues;    // rejected counters start at zero
    std::vector<std::string> batchers;  // batch size histograms exist from the start
    int max_batch_size = 8;             // upper end of the batch size buckets
  };

  // INVALID_ARGUMENT when `registry` is null, max_batch_size < 1 or a name clashes with a family
  // of another type already in the registry.
  static absl::StatusOr<std::unique_ptr<ServerMetrics>> Create(Options options,
                                                               prometheus::Registry* registry);

  // One finished call of `rpc` with `code`, `seconds` after it was accepted.
  void RecordCall(absl::string_view rpc, absl::StatusCode code, double seconds);
  void RecordStage(absl::string_view model, Stage stage, double seconds);
  // Records every stage of `timing` that took time (zero means the stage did not run: Predict has
  // no explain or encode stage, cache hits have none).
  void RecordTiming(absl::string_view model, const cropshield::v1::Timing& timing);
  void ObserveBatchSize(absl::string_view batcher, int size);
  void CountRejected(absl::string_view queue);

  // 100 us, 250 us, 500 us, 1 ms, ... 5 s, 10 s (1-2.5-5 steps).
  static std::vector<double> LatencyBuckets();
  // 1, 2, ... 8, then doubling until max_batch_size is covered.
  static std::vector<double> BatchSizeBuckets(int max_batch_size);

 private:
  struct CallSeries {
    prometheus::Counter* requests = nullptr;
    prometheus::Counter* errors = nullptr;  // null for OK
    prometheus::Histogram* duration = nullptr;
  };
  using StageSeries = std::array<prometheus::Histogram*, kStageCount>;

  ServerMetrics(const Options& options, prometheus::Family<prometheus::Counter>* requests,
                prometheus::Family<prometheus::Counter>* errors,
                prometheus::Family<prometheus::Histogram>* duration,
                prometheus::Family<prometheus::Histogram>* stages,
                prometheus::Family<prometheus::Histogram>* batch_size,
                prometheus::Family<prometheus::Counter>* rejected);

  // Find or create.
  CallSeries Call(absl::string_view rpc, absl::StatusCode code);
  StageSeries Stages(absl::string_view model);
  prometheus::Histogram* Batch(absl::string_view batcher);
  prometheus::Counter* Rejected(absl::string_view queue);

  const std::vector<double> latency_buckets_;
  const std::vector<double> batch_buckets_;
  prometheus::Family<prometheus::Counter>* const requests_;
  prometheus::Family<prometheus::Counter>* const errors_;
  prometheus::Family<prometheus::Histogram>* const duration_;
  prometheus::Family<prometheus::Histogram>* const stages_;
  prometheus::Family<prometheus::Histogram>* const batch_size_;
  prometheus::Family<prometheus::Counter>* const rejected_;

  // Series by label values: looked up under a reader lock, else made by `make` outside the lock
  // (the family has its own) and kept, the first one kept winning (a family hands out one series
  // per label set). Values are copied out because map values move on rehash.
  template <typename Key, typename Series>
  class SeriesCache {
   public:
    template <typename Lookup, typename Make>
    Series FindOrMake(const Lookup& key, Make make) ABSL_LOCKS_EXCLUDED(mu_) {
      {
        absl::ReaderMutexLock lock(&mu_);
        auto it = series_.find(key);
        if (it != series_.end()) return it->second;
      }
      const Series made = make();
      absl::MutexLock lock(&mu_);
      return series_.try_emplace(Key(key), made).first->second;
    }

   private:
    absl::Mutex mu_;
    absl::flat_hash_map<Key, Series> series_ ABSL_GUARDED_BY(mu_);
  };

  // Series handed out by the families live as long as the registry; these only cache them.
  SeriesCache<std::pair<std::string, int>, CallSeries> calls_;
  SeriesCache<std::string, StageSeries> stage_series_;
  SeriesCache<std::string, prometheus::Histogram*> batch_series_;
  SeriesCache<std::string, prometheus::Counter*> rejected_series_;
};

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_SERVER_METRICS_H_
