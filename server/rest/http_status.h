// absl::Status -> HTTP for the REST front end: the status code (the mapping grpc-gateway and
// Google's HTTP APIs use), and the JSON error body {"error": message, "code": "NOT_FOUND"}.
//
// Thread-safety: free functions without shared state.
#ifndef CROPSHIELD_SERVER_REST_HTTP_STATUS_H_
#define CROPSHIELD_SERVER_REST_HTTP_STATUS_H_

#include <httplib.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace cropshield::rest {

// 400, 401, 403, 404, 409, 429, 499, 500, 501, 503, 504 by code.
int HttpStatusFor(absl::StatusCode code);

// Writes `status` as a JSON error into `response`; 429 and 503 carry Retry-After (whole seconds,
// at least 1, from `retry_after_ms`).
void WriteError(const absl::Status& status, int64_t retry_after_ms, httplib::Response& response);

// `value` as JSON text; invalid UTF-8 in strings is replaced, never thrown on.
template <typename Json>
std::string Dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_HTTP_STATUS_H_
