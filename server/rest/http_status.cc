#include "server/rest/http_status.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace cropshield::rest {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

void WriteError(const absl::Status& status, int64_t retry_after_ms, httplib::Response& response) {
  response.status = HttpStatusFor(status.code());
  if (response.status == 429 || response.status == 503) {
    const int64_t seconds = std::max<int64_t>(1, (retry_after_ms + 999) / 1000);
    response.set_header("Retry-After", absl::StrCat(seconds));
  }
  const nlohmann::json body = {{"error", std::string(status.message())},
                               {"code", absl::StatusCodeToString(status.code())}};
  response.set_content(Dump(body), "application/json");
}

}  // namespace cropshield::rest
