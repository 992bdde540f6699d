#include "server/grpc_api/health_service.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

namespace cropshield::grpc_api {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Owned by itself (self_) until gRPC calls OnDone, and by whoever is delivering
// an update at that moment, so an update never touches a deleted reactor. Updates carry the
// generation of the status change they belong to: a late, older one is ignored.
class HealthService::Watcher final : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* owner, std::string service)
      : owner_(owner), service_(std::move(service)) {}

  void Start(std::shared_ptr<Watcher> self) {
    absl::MutexLock lock(&mu_);
    self_ = std::move(self);
  }

  // Sends `status` unless a newer generation was applied; `then_finish` ends the stream after it.
  void Update(ServingStatus status, uint64_t generation, bool then_finish) {
    {
      absl::MutexLock lock(&mu_);
      if (generation < generation_) return;
      generation_ = generation;
      pending_ = status;
      finish_ = finish_ || then_finish;
    }
    Step();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) finish_ = true;  // the stream is broken: nothing more can be sent
    }
    Step();
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      finish_ = true;
    }
    Step();
  }

  void OnDone() override {
    owner_->Forget(this);
    std::shared_ptr<Watcher> last;
    absl::MutexLock lock(&mu_);
    last = std::move(self_);  // released after the lock, possibly deleting this
  }

 private:
  // Starts the next write or the finish, outside the lock (gRPC may run reactions inline).
  void Step() {
    enum class Action { kNone, kWrite, kFinish } action = Action::kNone;
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_) return;
      if (!cancelled_ && pending_.has_value() &&
          (!last_sent_.has_value() || *pending_ != *last_sent_)) {
        response_.set_status(*pending_);
        last_sent_ = pending_;
        pending_.reset();
        writing_ = true;
        action = Action::kWrite;
      } else if (finish_) {
        finished_ = true;
        cancelled = cancelled_;
        action = Action::kFinish;
      }
    }
    if (action == Action::kWrite) StartWrite(&response_);
    if (action == Action::kFinish) {
      Finish(cancelled ? grpc::Status::CANCELLED : grpc::Status::OK);
    }
  }

  HealthService* const owner_;
  const std::string service_;
  absl::Mutex mu_;
  std::shared_ptr<Watcher> self_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ServingStatus> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<ServingStatus> last_sent_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // Written only while writing_ is false, read by gRPC while it is true.
  HealthCheckResponse response_;
};

HealthService::HealthService(std::vector<std::string> services) : services_(std::move(services)) {}

HealthService::~HealthService() = default;

bool HealthService::Known(const std::string& service) const {
  return service.empty() ||
         std::find(services_.begin(), services_.end(), service) != services_.end();
}

HealthService::ServingStatus HealthService::StatusLocked(const std::string& service) const {
  if (!Known(service)) return HealthCheckResponse::SERVICE_UNKNOWN;
  return serving_ && !shut_down_ ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) { Publish(serving, /*shut_down=*/false); }

void HealthService::Shutdown() { Publish(false, /*shut_down=*/true); }

void HealthService::Publish(bool serving, bool shut_down) {
  std::vector<std::pair<std::shared_ptr<Watcher>, ServingStatus>> updates;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    serving_ = serving;
    shut_down_ = shut_down;
    generation = ++generation_;
    for (const auto& [watcher, service] : watchers_) {
      updates.emplace_back(watcher, StatusLocked(service));
    }
  }
  // Outside the lock: gRPC may run a reaction inline, and OnDone takes it (Forget).
  for (auto& [watcher, status] : updates) watcher->Update(status, generation, shut_down);
}

void HealthService::Forget(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  for (auto it = watchers_.begin(); it != watchers_.end(); ++it) {
    if (it->first.get() == watcher) {
      watchers_.erase(it);
      return;
    }
  }
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request,
                                               HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Known(request->service())) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service '" + request->service() + "'"));
    return reactor;
  }
  {
    absl::MutexLock lock(&mu_);
    response->set_status(StatusLocked(request->service()));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* /*context*/, const HealthCheckRequest* request) {
  auto watcher = std::make_shared<Watcher>(this, request->service());
  watcher->Start(watcher);
  ServingStatus status = HealthCheckResponse::UNKNOWN;
  uint64_t generation = 0;
  bool shut_down = false;
  {
    absl::MutexLock lock(&mu_);
    status = StatusLocked(request->service());
    generation = generation_;
    shut_down = shut_down_;
    if (!shut_down) watchers_.emplace(watcher, request->service());
  }
  watcher->Update(status, generation, /*then_finish=*/shut_down);
  return watcher.get();
}

}  // namespace cropshield::grpc_api
