#include "server/metrics/metrics_endpoint.h"

#include <utility>

namespace cropshield::metrics {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& address, const MetricsRegistry* metrics) {
  if (metrics == nullptr) return absl::InvalidArgumentError("metrics endpoint needs a registry");
  std::unique_ptr<MetricsEndpoint> endpoint(new MetricsEndpoint());
  endpoint->AddRoutes(metrics);
  http::HttpServer::Options options;
  options.address = address;
  options.name = "metrics";
  if (absl::Status started = endpoint->http_.Start(std::move(options)); !started.ok()) {
    return started;
  }
  return endpoint;
}

void MetricsEndpoint::AddRoutes(const MetricsRegistry* metrics) {
  httplib::Server& routes = http_.routes();
  routes.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics->SerializeText(), kTextFormatContentType);
  });
  routes.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
    response.set_content("ok\n", "text/plain; charset=utf-8");
  });
  routes.Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(
        "<html><head><title>CropShield Serve</title></head><body><h1>CropShield Serve</h1>"
        "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n",
        "text/html; charset=utf-8");
  });
  routes.set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.status == 404) {
      response.set_content("not found; try /metrics\n", "text/plain; charset=utf-8");
    }
  });
}

}  // namespace cropshield::metrics
