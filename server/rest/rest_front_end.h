// The HTTP/REST front end: routes on a cpp-httplib router (served by http::HttpServer's loop),
// each translating HTTP/JSON to the inference core's messages and back, with no orchestration of
// its own:
//   GET  /v2, /v2/health/live, /v2/health/ready (200 only while SERVING)      Open Inference
//   GET  /v2/models/{name}[/versions/{v}], .../ready, .../config, .../stats    Protocol REST,
//   POST /v2/models/{name}[/versions/{v}]/infer                                via
//   InferenceProtocol POST /v1/predict, /v1/explain   the photo as the body (image/jpeg|png|webp)
//   or as multipart
//                                   field "image"; JSON answers (Explain: or the overlay itself
//                                   with Accept: image/png or image/jpeg)
//   POST /v1/cache:clear            admin, as gRPC ClearCache (Authorization: Bearer <token>)
//   GET  /v1/stats                  Stats as JSON (paths redacted unless admin)
//   GET  /, /static/...             the web page (server/web)
// Errors are JSON {"error", "code"} with the HTTP status of the core's status (http_status.h).
//
// Thread-safety: handlers run concurrently on the HTTP server's handler threads, each blocking
// while the core answers its call. The core and protocol must outlive the front end.
#ifndef CROPSHIELD_SERVER_REST_REST_FRONT_END_H_
#define CROPSHIELD_SERVER_REST_REST_FRONT_END_H_

#include <httplib.h>

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/inference_core.h"
#include "server/oip/protocol.h"

namespace cropshield::rest {

struct RestOptions {
  // How long a call may take before the core drops it (DEADLINE_EXCEEDED, HTTP 504); callers may
  // ask for less with the header "Request-Timeout-Ms".
  absl::Duration request_timeout = absl::Seconds(60);
};

class RestFrontEnd {
 public:
  static absl::StatusOr<std::unique_ptr<RestFrontEnd>> Create(RestOptions options,
                                                              core::InferenceCore* core,
                                                              oip::InferenceProtocol* protocol);

  // Registers every route on `routes` (before serving).
  void AddRoutes(httplib::Server& routes);

 private:
  RestFrontEnd(RestOptions options, core::InferenceCore* core, oip::InferenceProtocol* protocol)
      : options_(options), core_(core), protocol_(protocol) {}

  // /v1 (rest_v1_routes.cc).
  void AddV1Routes(httplib::Server& routes);
  void Predict(const httplib::Request& request, httplib::Response& response);
  void Explain(const httplib::Request& request, httplib::Response& response);
  void ClearCache(const httplib::Request& request, httplib::Response& response);
  void Stats(const httplib::Request& request, httplib::Response& response);
  // /v2 (rest_v2_routes.cc).
  void AddV2Routes(httplib::Server& routes);
  void Infer(const httplib::Request& request, httplib::Response& response);
  // The web page (rest_web_routes.cc).
  void AddWebRoutes(httplib::Server& routes);

  // When a call from `request` stops being worth answering.
  absl::Time DeadlineFor(const httplib::Request& request) const;
  void Fail(const absl::Status& status, httplib::Response& response) const;

  const RestOptions options_;
  core::InferenceCore* const core_;
  oip::InferenceProtocol* const protocol_;
};

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_REST_FRONT_END_H_
