#include "server/metrics/metrics_endpoint.h"

#include <utility>

namespace cropshield::metrics {

HttpResponse HandleMetricsRequest(const MetricsRegistry& metrics, const HttpRequest& request) {
  HttpResponse response;
  if (request.path == "/metrics") {
    response.content_type = kTextFormatContentType;
    response.body = metrics.SerializeText();
  } else if (request.path == "/healthz") {
    response.body = "ok\n";
  } else if (request.path == "/") {
    response.content_type = "text/html; charset=utf-8";
    response.body =
        "<html><head><title>CropShield Serve</title></head><body><h1>CropShield Serve</h1>"
        "<p><a href=\"/metrics\">Metrics</a></p></body></html>\n";
  } else {
    response.status = 404;
    response.body = "not found; try /metrics\n";
  }
  return response;
}

absl::StatusOr<std::unique_ptr<HttpServer>> StartMetricsEndpoint(const std::string& address,
                                                                 const MetricsRegistry* metrics) {
  if (metrics == nullptr) return absl::InvalidArgumentError("metrics endpoint needs a registry");
  HttpServer::Options options;
  options.address = address;
  return HttpServer::Start(std::move(options), [metrics](const HttpRequest& request) {
    return HandleMetricsRequest(*metrics, request);
  });
}

}  // namespace cropshield::metrics
