#include "server/rest/rest_front_end.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "server/rest/http_status.h"

namespace cropshield::rest {

absl::StatusOr<std::unique_ptr<RestFrontEnd>> RestFrontEnd::Create(
    RestOptions options, core::InferenceCore* core, oip::InferenceProtocol* protocol) {
  if (core == nullptr || protocol == nullptr) {
    return absl::InvalidArgumentError("the REST front end needs a core and a protocol");
  }
  if (options.request_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the REST request timeout must be positive");
  }
  return std::unique_ptr<RestFrontEnd>(new RestFrontEnd(options, core, protocol));
}

void RestFrontEnd::AddRoutes(httplib::Server& routes) {
  AddV1Routes(routes);
  AddV2Routes(routes);
  AddWebRoutes(routes);
  // cpp-httplib's own refusals (no route, a form body over its limit, a bad range) as JSON.
  routes.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return;
    const int status = response.status;
    const std::string what = status == 404
                                 ? "no such endpoint: " + request.method + " " + request.path
                                 : "the request was refused (HTTP " + std::to_string(status) +
                                       "); send photos as image/* or multipart/form-data and "
                                       "JSON as application/json";
    WriteError(
        absl::Status(
            status == 404 ? absl::StatusCode::kNotFound : absl::StatusCode::kInvalidArgument, what),
        0, response);
    response.status = status;
  });
  // A handler that throws (it should not) answers 500 without echoing the exception.
  routes.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        WriteError(absl::InternalError("the request failed inside the server"), 0, response);
      });
}

absl::Time RestFrontEnd::DeadlineFor(const httplib::Request& request) const {
  absl::Duration timeout = options_.request_timeout;
  int64_t asked_ms = 0;
  if (absl::SimpleAtoi(request.get_header_value("Request-Timeout-Ms"), &asked_ms) && asked_ms > 0) {
    timeout = std::min(timeout, absl::Milliseconds(asked_ms));
  }
  return absl::Now() + timeout;
}

void RestFrontEnd::Fail(const absl::Status& status, httplib::Response& response) const {
  WriteError(status, core_->retry_pushback_ms(), response);
}

}  // namespace cropshield::rest
