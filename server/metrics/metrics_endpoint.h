// The HTTP endpoint Prometheus scrapes, on the flood-proof HttpServer (default-size std::thread
// stacks, so it starts in processes linked with CUDA libtorch, unlike prometheus-cpp's civetweb
// Exposer) with cpp-httplib routing:
//   GET|HEAD /metrics  200, the MetricsRegistry in the text exposition format 0.0.4
//   GET|HEAD /healthz  200 "ok" (the process is up; readiness: gRPC health, REST /v2/health/ready)
//   GET|HEAD /         200, a short page linking to /metrics
//   anything else      404 (other methods 405; request bodies 413)
//
// Thread-safety: port() from any thread; Shutdown (also the destructor) from one thread. The
// registry must outlive the endpoint.
#ifndef CROPSHIELD_SERVER_METRICS_METRICS_ENDPOINT_H_
#define CROPSHIELD_SERVER_METRICS_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/http/http_server.h"
#include "server/http/routed_http_server.h"
#include "server/metrics/metrics_registry.h"

namespace cropshield::metrics {

class MetricsEndpoint {
 public:
  // Starts serving `metrics` on `address` (host:port; port 0 picks one, see port()).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const std::string& address,
                                                                const MetricsRegistry* metrics);

  int port() const { return http_.port(); }
  // Stops serving; idempotent.
  void Shutdown() { http_.Shutdown(); }

 private:
  MetricsEndpoint() = default;
  void AddRoutes(const MetricsRegistry* metrics);

  http::RoutedHttpServer http_;
};

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_METRICS_ENDPOINT_H_
