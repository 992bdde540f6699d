#include "server/http/http_message.h"

#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cropshield::http {

std::string HttpRequest::Header(const std::string& name) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return "";
}

const char* HttpReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

namespace internal {

absl::StatusOr<HttpRequest> ParseHead(absl::string_view head) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, '\n');
  HttpRequest request;
  for (absl::string_view& line : lines) absl::ConsumeSuffix(&line, "\r");
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (parts.size() != 3 || !absl::StartsWith(parts[2], "HTTP/1.")) {
    return absl::InvalidArgumentError("malformed request line");
  }
  request.method = std::string(parts[0]);
  absl::string_view target = parts[1];
  // Absolute form (proxies): drop scheme and authority.
  if (absl::ConsumePrefix(&target, "http://") || absl::ConsumePrefix(&target, "https://")) {
    const size_t slash = target.find('/');
    target = slash == absl::string_view::npos ? absl::string_view("/") : target.substr(slash);
  }
  if (!absl::StartsWith(target, "/")) return absl::InvalidArgumentError("bad request target");
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != absl::string_view::npos) request.query = std::string(target.substr(question + 1));
  for (size_t i = 1; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0) {
      return absl::InvalidArgumentError("malformed header field");
    }
    request.headers.emplace_back(
        absl::AsciiStrToLower(lines[i].substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return request;
}

size_t HeadEnd(absl::string_view data, size_t from) {
  const size_t crlf = data.find("\r\n\r\n", from);
  const size_t lf = data.find("\n\n", from);
  return std::min(crlf, lf);
}

std::string SerializeResponse(const HttpResponse& response, bool include_body) {
  std::string out =
      absl::StrCat("HTTP/1.1 ", response.status, " ", HttpReasonPhrase(response.status),
                   "\r\nContent-Type: ", response.content_type,
                   "\r\nContent-Length: ", response.body.size(), "\r\nConnection: close\r\n");
  for (const std::string& header : response.headers) absl::StrAppend(&out, header, "\r\n");
  out += "\r\n";
  if (include_body) out += response.body;
  return out;
}

std::string PlainResponse(int status, absl::string_view body, std::vector<std::string> headers) {
  HttpResponse response;
  response.status = status;
  response.body = std::string(body);
  response.headers = std::move(headers);
  return SerializeResponse(response, true);
}

absl::StatusOr<size_t> BodyLength(const HttpRequest& request) {
  if (!request.Header("transfer-encoding").empty()) {
    return absl::FailedPreconditionError(
        "chunked request bodies are not supported; send Content-Length");
  }
  const std::string length = request.Header("content-length");
  if (length.empty()) return 0;
  size_t value = 0;
  if (length.size() > 18 || !absl::SimpleAtoi(length, &value) ||
      length.find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError("malformed Content-Length");
  }
  return value;
}

}  // namespace internal
}  // namespace cropshield::http
