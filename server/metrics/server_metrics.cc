#include "server/metrics/server_metrics.h"

#include <exception>
#include <optional>

#include "absl/strings/str_cat.h"
#include "cropshield/v1/cropshield.pb.h"

namespace cropshield::metrics {
namespace {

// Family::Add only throws for invalid label names (ours are constants) or when out of memory;
// recording must never throw, so a failure leaves the series out.
template <typename T, typename... Args>
T* AddSeries(prometheus::Family<T>* family, const prometheus::Labels& labels, Args&&... args) {
  try {
    return &family->Add(labels, std::forward<Args>(args)...);
  } catch (const std::exception&) {
    return nullptr;
  }
}

// Registers the family `name` that `builder` (BuildCounter(), BuildHistogram()) builds in
// `registry`; throws as Builder::Register.
template <typename Builder>
auto& Register(Builder builder, prometheus::Registry* registry, const std::string& name,
               const std::string& help) {
  return builder.Name(name).Help(help).Register(*registry);
}

}  // namespace

std::vector<double> ServerMetrics::LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0,  10.0};
}

std::vector<double> ServerMetrics::BatchSizeBuckets(int max_batch_size) {
  std::vector<double> buckets;
  for (int size = 1; size <= 8; ++size) buckets.push_back(size);
  for (int size = 16; buckets.back() < max_batch_size; size *= 2) buckets.push_back(size);
  return buckets;
}

absl::StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(
    Options options, prometheus::Registry* registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("server metrics need a registry");
  if (options.max_batch_size < 1) return absl::InvalidArgumentError("max_batch_size must be >= 1");
  std::unique_ptr<ServerMetrics> metrics;
  try {
    auto& requests = Register(prometheus::BuildCounter(), registry, "cropshield_requests_total",
                              "Finished RPCs by method and gRPC status code.");
    auto& errors = Register(prometheus::BuildCounter(), registry, "cropshield_request_errors_total",
                            "Finished RPCs whose gRPC status code is not OK.");
    auto& duration =
        Register(prometheus::BuildHistogram(), registry, "cropshield_request_duration_seconds",
                 "Time from accepting an RPC to finishing it, on the server.");
    auto& stages =
        Register(prometheus::BuildHistogram(), registry, "cropshield_stage_duration_seconds",
                 "Time spent per stage of a call (decode, preprocess, queue wait, "
                 "inference, explain, encode) by model.");
    auto& batch_size = Register(prometheus::BuildHistogram(), registry, "cropshield_batch_size",
                                "Requests computed together in one model forward, by batcher.");
    auto& rejected =
        Register(prometheus::BuildCounter(), registry, "cropshield_queue_rejected_total",
                 "Submissions refused because the queue was full "
                 "(the call got RESOURCE_EXHAUSTED).");
    metrics.reset(
        new ServerMetrics(options, &requests, &errors, &duration, &stages, &batch_size, &rejected));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot register server metrics: ", e.what()));
  }
  for (const std::string& rpc : options.rpcs) metrics->Call(rpc, absl::StatusCode::kOk);
  for (const std::string& queue : options.queues) metrics->Rejected(queue);
  for (const std::string& batcher : options.batchers) metrics->Batch(batcher);
  return metrics;
}

ServerMetrics::ServerMetrics(const Options& options,
                             prometheus::Family<prometheus::Counter>* requests,
                             prometheus::Family<prometheus::Counter>* errors,
                             prometheus::Family<prometheus::Histogram>* duration,
                             prometheus::Family<prometheus::Histogram>* stages,
                             prometheus::Family<prometheus::Histogram>* batch_size,
                             prometheus::Family<prometheus::Counter>* rejected)
    : latency_buckets_(LatencyBuckets()),
      batch_buckets_(BatchSizeBuckets(options.max_batch_size)),
      requests_(requests),
      errors_(errors),
      duration_(duration),
      stages_(stages),
      batch_size_(batch_size),
      rejected_(rejected) {}

ServerMetrics::CallSeries ServerMetrics::Call(absl::string_view rpc, absl::StatusCode code) {
  const std::pair<std::string, int> key(std::string(rpc), static_cast<int>(code));
  return calls_.FindOrMake(key, [&] {
    const prometheus::Labels labels = {{"rpc", key.first},
                                       {"code", absl::StatusCodeToString(code)}};
    CallSeries series;
    series.requests = AddSeries(requests_, labels);
    if (code != absl::StatusCode::kOk) series.errors = AddSeries(errors_, labels);
    series.duration = AddSeries(duration_, labels, latency_buckets_);
    return series;
  });
}

ServerMetrics::StageSeries ServerMetrics::Stages(absl::string_view model) {
  return stage_series_.FindOrMake(model, [&] {
    StageSeries series{};
    for (int i = 0; i < kStageCount; ++i) {
      series[i] = AddSeries(stages_, {{"model", std::string(model)}, {"stage", kStageNames[i]}},
                            latency_buckets_);
    }
    return series;
  });
}

prometheus::Histogram* ServerMetrics::Batch(absl::string_view batcher) {
  return batch_series_.FindOrMake(batcher, [&] {
    return AddSeries(batch_size_, {{"batcher", std::string(batcher)}}, batch_buckets_);
  });
}

prometheus::Counter* ServerMetrics::Rejected(absl::string_view queue) {
  return rejected_series_.FindOrMake(queue, [&] {
    return AddSeries(rejected_, {{"queue", std::string(queue)}});
  });
}

void ServerMetrics::RecordCall(absl::string_view rpc, absl::StatusCode code, double seconds) {
  const CallSeries series = Call(rpc, code);
  if (series.requests != nullptr) series.requests->Increment();
  if (series.errors != nullptr) series.errors->Increment();
  if (series.duration != nullptr) series.duration->Observe(seconds);
}

void ServerMetrics::RecordStage(absl::string_view model, Stage stage, double seconds) {
  prometheus::Histogram* histogram = Stages(model)[static_cast<int>(stage)];
  if (histogram != nullptr) histogram->Observe(seconds);
}

void ServerMetrics::RecordTiming(absl::string_view model, const cropshield::v1::Timing& timing) {
  const std::array<int64_t, kStageCount> stages = StageMicros(timing);
  std::optional<StageSeries> series;
  for (int stage = 0; stage < kStageCount; ++stage) {
    const int64_t micros = stages[stage];
    if (micros <= 0) continue;
    if (!series.has_value()) series = Stages(model);
    prometheus::Histogram* histogram = (*series)[stage];
    if (histogram != nullptr) histogram->Observe(static_cast<double>(micros) * 1e-6);
  }
}

void ServerMetrics::ObserveBatchSize(absl::string_view batcher, int size) {
  prometheus::Histogram* histogram = Batch(batcher);
  if (histogram != nullptr) histogram->Observe(size);
}

void ServerMetrics::CountRejected(absl::string_view queue) {
  prometheus::Counter* counter = Rejected(queue);
  if (counter != nullptr) counter->Increment();
}

}  // namespace cropshield::metrics
