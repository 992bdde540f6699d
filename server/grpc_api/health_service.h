// grpc.health.v1.Health (Check and Watch) for this server, used instead of gRPC's default health
// service, which reports SERVING from the moment the server starts accepting calls: a probe could
// see SERVING before the first SetServing(false) ran. Here every service starts NOT_SERVING.
//
// Thread-safety: SetServing and Shutdown may be called from any thread, concurrently with the RPCs.
// The grpc::Server that serves this service must be shut down before it is destroyed.
#ifndef CROPSHIELD_SERVER_GRPC_API_HEALTH_SERVICE_H_
#define CROPSHIELD_SERVER_GRPC_API_HEALTH_SERVICE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace cropshield::grpc_api {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  // `services`: the names Check and Watch answer for, besides "" (the whole server).
  explicit HealthService(std::vector<std::string> services);
  ~HealthService() override;

  // The status of every known service.
  void SetServing(bool serving);
  // NOT_SERVING for good; every Watch stream is told, then ends with OK, so that the server's
  // shutdown does not wait for watchers. Later Watch calls get NOT_SERVING and end at once.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  bool Known(const std::string& service) const;
  ServingStatus StatusLocked(const std::string& service) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(Watcher* watcher);
  // Sets the status and tells every watcher; with shut_down, for good, ending their streams.
  void Publish(bool serving, bool shut_down);

  const std::vector<std::string> services_;
  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // of the latest status change
  // Open Watch streams and the service each watches.
  std::map<std::shared_ptr<Watcher>, std::string> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cropshield::grpc_api

#endif  // CROPSHIELD_SERVER_GRPC_API_HEALTH_SERVICE_H_
