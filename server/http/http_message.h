// Internal to HttpServer: the request head's parsing and the response's serialization. Pure
// functions, no sockets.
//
// Thread-safety: every function is reentrant.
#ifndef CROPSHIELD_SERVER_HTTP_HTTP_MESSAGE_H_
#define CROPSHIELD_SERVER_HTTP_HTTP_MESSAGE_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/http/http_server.h"

namespace cropshield::http::internal {

// Parses the request head (request line and header fields, without the blank line).
absl::StatusOr<HttpRequest> ParseHead(absl::string_view head);

// Where the head in `data` ends (the offset of its blank line), searching from `from`; npos if
// it has not ended yet. Bare "\n\n" is accepted as well.
size_t HeadEnd(absl::string_view data, size_t from);

// The status line, Content-Type, Content-Length, "Connection: close", the extra headers and, if
// `include_body`, the body.
std::string SerializeResponse(const HttpResponse& response, bool include_body);

// A text/plain response with `body` and extra `headers` (lines without CRLF), serialized.
std::string PlainResponse(int status, absl::string_view body,
                          std::vector<std::string> headers = {});

// The body's length from Content-Length (0 without one); FAILED_PRECONDITION for a
// Transfer-Encoding (chunked bodies are not read), INVALID_ARGUMENT for a malformed length.
absl::StatusOr<size_t> BodyLength(const HttpRequest& request);

}  // namespace cropshield::http::internal

#endif  // CROPSHIELD_SERVER_HTTP_HTTP_MESSAGE_H_
