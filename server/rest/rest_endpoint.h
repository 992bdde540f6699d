// The HTTP port: the REST front end's routes (rest_front_end.h) on a cpp-httplib router, served by
// the flood-proof http::HttpServer with request bodies enabled.
//
// Thread-safety: port() from any thread; Shutdown (also the destructor) from one thread. The core
// and protocol must outlive the endpoint; shut it down before the core (its handler threads wait
// for calls the core is answering).
#ifndef CROPSHIELD_SERVER_REST_REST_ENDPOINT_H_
#define CROPSHIELD_SERVER_REST_REST_ENDPOINT_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/http/http_server.h"
#include "server/http/routed_http_server.h"
#include "server/http/tls_context.h"
#include "server/rest/rest_front_end.h"

namespace cropshield::rest {

struct RestEndpointOptions {
  std::string address = "0.0.0.0:8000";
  // Calls served at once (each handler thread waits for its call); more queue, then 503.
  int threads = 8;
  size_t max_queued_requests = 256;
  // Largest request body (a photo, or an infer request with several); larger: 413.
  size_t max_body_bytes = 16 << 20;
  // Head's end to the body's last byte; a body slower than this gets 408.
  absl::Duration body_timeout = absl::Seconds(30);
  // Request bodies buffered at once, all connections together; more: 503.
  size_t max_buffered_body_bytes = 256 << 20;
  RestOptions rest;
  // TLS (PEM contents); an empty certificate serves plaintext. With a client CA, clients must
  // present a certificate it signed (mutual TLS, as on the gRPC port).
  http::TlsOptions tls;
};

class RestEndpoint {
 public:
  static absl::StatusOr<std::unique_ptr<RestEndpoint>> Start(RestEndpointOptions options,
                                                             core::InferenceCore* core,
                                                             oip::InferenceProtocol* protocol);

  int port() const { return http_.port(); }
  // Stops accepting, lets calls being handled finish; idempotent.
  void Shutdown() { http_.Shutdown(); }

 private:
  RestEndpoint() = default;

  std::unique_ptr<RestFrontEnd> front_end_;
  http::RoutedHttpServer http_;  // after front_end_: stops before the handlers go
};

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_REST_ENDPOINT_H_
