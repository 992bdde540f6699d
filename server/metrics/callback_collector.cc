#include "server/metrics/callback_collector.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/check_names.h"

namespace cropshield::metrics {

void CallbackCollector::Sink::Add(absl::string_view name, const Labels& labels, double value) {
  auto it = families_->find(name);
  if (it == families_->end()) return;
  prometheus::ClientMetric metric;
  for (const auto& [label, label_value] : labels) {
    if (!prometheus::CheckLabelName(label)) return;
    metric.label.push_back({label, label_value});
  }
  switch (it->second.type) {
    case prometheus::MetricType::Counter:
      metric.counter.value = value;
      break;
    case prometheus::MetricType::Gauge:
      metric.gauge.value = value;
      break;
    default:
      metric.untyped.value = value;
      break;
  }
  it->second.metric.push_back(std::move(metric));
}

absl::Status CallbackCollector::Declare(const std::string& name, const std::string& help,
                                        prometheus::MetricType type) {
  if (!prometheus::CheckMetricName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid metric name '", name, "'"));
  }
  if (type != prometheus::MetricType::Counter && type != prometheus::MetricType::Gauge &&
      type != prometheus::MetricType::Untyped) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric '", name, "': only counters, gauges and untyped are computed here"));
  }
  absl::MutexLock lock(&mu_);
  for (const prometheus::MetricFamily& family : declared_) {
    if (family.name == name) {
      return absl::AlreadyExistsError(absl::StrCat("metric '", name, "' declared twice"));
    }
  }
  prometheus::MetricFamily family;
  family.name = name;
  family.help = help;
  family.type = type;
  declared_.push_back(std::move(family));
  return absl::OkStatus();
}

void CallbackCollector::AddSource(Source source) {
  if (!source) return;
  absl::MutexLock lock(&mu_);
  sources_.push_back(std::make_shared<const Source>(std::move(source)));
}

std::vector<prometheus::MetricFamily> CallbackCollector::Collect() const {
  std::vector<std::string> order;
  absl::flat_hash_map<std::string, prometheus::MetricFamily> families;
  std::vector<std::shared_ptr<const Source>> sources;
  {
    absl::MutexLock lock(&mu_);
    for (const prometheus::MetricFamily& family : declared_) {
      order.push_back(family.name);
      families.emplace(family.name, family);
    }
    sources = sources_;
  }
  Sink sink(&families);
  for (const auto& source : sources) (*source)(sink);
  std::vector<prometheus::MetricFamily> result;
  for (const std::string& name : order) {
    prometheus::MetricFamily& family = families[name];
    if (!family.metric.empty()) result.push_back(std::move(family));
  }
  return result;
}

}  // namespace cropshield::metrics
