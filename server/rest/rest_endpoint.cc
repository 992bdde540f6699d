#include "server/rest/rest_endpoint.h"

#include <utility>

namespace cropshield::rest {

absl::StatusOr<std::unique_ptr<RestEndpoint>> RestEndpoint::Start(
    RestEndpointOptions options, core::InferenceCore* core, oip::InferenceProtocol* protocol) {
  std::unique_ptr<RestEndpoint> endpoint(new RestEndpoint());
  auto front_end = RestFrontEnd::Create(options.rest, core, protocol);
  if (!front_end.ok()) return front_end.status();
  endpoint->front_end_ = *std::move(front_end);
  endpoint->front_end_->AddRoutes(endpoint->http_.routes());
  http::HttpServer::Options http;
  http.address = options.address;
  http.name = "http";
  http.handler_threads = options.threads;
  http.max_queued_requests = options.max_queued_requests;
  http.max_body_bytes = options.max_body_bytes;
  http.body_timeout = options.body_timeout;
  http.max_buffered_body_bytes = options.max_buffered_body_bytes;
  http.allowed_methods = {"GET", "HEAD", "POST"};
  if (!options.tls.cert_pem.empty()) {
    auto tls = http::TlsContext::Create(options.tls);
    if (!tls.ok()) return tls.status();
    http.tls = *std::move(tls);
  }
  if (absl::Status started = endpoint->http_.Start(std::move(http)); !started.ok()) {
    return started;
  }
  return endpoint;
}

}  // namespace cropshield::rest
