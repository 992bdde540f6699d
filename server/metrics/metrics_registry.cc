#include "server/metrics/metrics_registry.h"

#include <iterator>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "prometheus/text_serializer.h"

namespace cropshield::metrics {

MetricsRegistry::Registration::Registration(Registration&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), id_(std::exchange(other.id_, 0)) {}

MetricsRegistry::Registration& MetricsRegistry::Registration::operator=(
    Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    owner_ = std::exchange(other.owner_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void MetricsRegistry::Registration::Reset() {
  if (owner_ != nullptr) owner_->Remove(id_);
  owner_ = nullptr;
  id_ = 0;
}

MetricsRegistry::MetricsRegistry() : registry_(std::make_shared<prometheus::Registry>()) {}

MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Registration MetricsRegistry::Add(
    std::shared_ptr<const prometheus::Collectable> collectable) {
  if (collectable == nullptr) return Registration();
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  collectables_.emplace_back(id, std::move(collectable));
  return Registration(this, id);
}

void MetricsRegistry::Remove(uint64_t id) {
  std::shared_ptr<const prometheus::Collectable> removed;  // destroyed after the lock is released
  absl::MutexLock lock(&mu_);
  for (auto it = collectables_.begin(); it != collectables_.end(); ++it) {
    if (it->first == id) {
      removed = std::move(it->second);
      collectables_.erase(it);
      break;
    }
  }
}

std::vector<prometheus::MetricFamily> MetricsRegistry::Collect() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, collectable] : collectables_) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return MergeFamilies(std::move(families));
}

std::string MetricsRegistry::SerializeText() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Collect());
  return out.str();
}

std::vector<prometheus::MetricFamily> MergeFamilies(
    std::vector<prometheus::MetricFamily> families) {
  std::vector<prometheus::MetricFamily> merged;
  absl::flat_hash_map<std::string, size_t> index;
  for (prometheus::MetricFamily& family : families) {
    if (family.metric.empty()) continue;
    auto [it, inserted] = index.emplace(family.name, merged.size());
    if (inserted) {
      merged.push_back(std::move(family));
      continue;
    }
    prometheus::MetricFamily& into = merged[it->second];
    if (into.type != family.type) continue;
    into.metric.insert(into.metric.end(), std::make_move_iterator(family.metric.begin()),
                       std::make_move_iterator(family.metric.end()));
  }
  return merged;
}

}  // namespace cropshield::metrics
