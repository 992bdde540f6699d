// The HTTP endpoint Prometheus scrapes: an HttpServer (default-size std::thread stacks, so it
// starts in processes linked with CUDA libtorch, unlike prometheus-cpp's civetweb Exposer) that
// answers
//   GET|HEAD /metrics  200, the MetricsRegistry in the text exposition format 0.0.4
//   GET|HEAD /healthz  200 "ok" (the process is up; readiness is gRPC health's job)
//   GET|HEAD /         200, a short page linking to /metrics
//   anything else      404 (other methods 405)
//
// Thread-safety: as HttpServer; the registry must outlive the returned server.
#ifndef CROPSHIELD_SERVER_METRICS_METRICS_ENDPOINT_H_
#define CROPSHIELD_SERVER_METRICS_METRICS_ENDPOINT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/metrics/http_server.h"
#include "server/metrics/metrics_registry.h"

namespace cropshield::metrics {

// Routes one request as described above.
HttpResponse HandleMetricsRequest(const MetricsRegistry& metrics, const HttpRequest& request);

// Starts serving `metrics` on `address` (host:port; port 0 picks one, see HttpServer::port()).
absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsEndpoint(const std::string& address,
                                                                 const MetricsRegistry* metrics);

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_METRICS_ENDPOINT_H_
