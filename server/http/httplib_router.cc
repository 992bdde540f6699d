#include "server/http/httplib_router.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

namespace cropshield::http {
namespace {

constexpr absl::string_view kBlankLine = "\r\n\r\n";
constexpr absl::string_view kInterimContinue = "HTTP/1.1 100 Continue\r\n\r\n";

// One received request (head, blank line, body) as cpp-httplib's input, and its output.
class ReplayStream : public httplib::Stream {
 public:
  explicit ReplayStream(const HttpRequest& request) : request_(request) {}

  bool is_readable() const override { return offset_ < Size(); }
  bool is_writable() const override { return true; }

  ssize_t read(char* ptr, size_t size) override {
    size_t copied = 0;
    while (copied < size && offset_ < Size()) {
      absl::string_view piece = Piece(offset_);
      const size_t n = std::min(size - copied, piece.size());
      std::memcpy(ptr + copied, piece.data(), n);
      copied += n;
      offset_ += n;
    }
    return static_cast<ssize_t>(copied);
  }

  ssize_t write(const char* ptr, size_t size) override {
    output_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = request_.peer_ip;
    port = request_.peer_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip.clear();
    port = 0;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

  // The response; without the "100 Continue" cpp-httplib writes for "Expect: 100-continue"
  // (the loop answered it before reading the body).
  std::string TakeOutput() {
    if (absl::StartsWith(output_, kInterimContinue)) output_.erase(0, kInterimContinue.size());
    return std::move(output_);
  }

 private:
  size_t Size() const { return request_.head.size() + kBlankLine.size() + request_.body.size(); }

  // The rest of the part of the message that holds byte `offset`.
  absl::string_view Piece(size_t offset) const {
    const size_t head = request_.head.size();
    if (offset < head) return absl::string_view(request_.head).substr(offset);
    if (offset < head + kBlankLine.size()) return kBlankLine.substr(offset - head);
    return absl::string_view(request_.body).substr(offset - head - kBlankLine.size());
  }

  const HttpRequest& request_;
  size_t offset_ = 0;
  std::string output_;
};

}  // namespace

// Exposes cpp-httplib's (protected) request processing for one replayed request.
class HttplibRouter::Server : public httplib::Server {
 public:
  std::string Process(const HttpRequest& request) {
    ReplayStream stream(request);
    bool connection_closed = false;
    process_request(stream, /*close_connection=*/true, connection_closed,
                    [&request](httplib::Request& parsed) {
                      parsed.headers.erase(kVerifiedIdentityHeader);
                      for (const std::string& identity : request.verified_identities) {
                        parsed.headers.emplace(kVerifiedIdentityHeader, identity);
                      }
                    });
    return stream.TakeOutput();
  }
};

HttplibRouter::HttplibRouter() : server_(std::make_unique<Server>()) {
  // The loop has received the whole body already; cpp-httplib must accept what it admitted.
  server_->set_payload_max_length(std::numeric_limits<size_t>::max());
}

HttplibRouter::~HttplibRouter() = default;

httplib::Server& HttplibRouter::routes() { return *server_; }

HttpResponse HttplibRouter::Handle(const HttpRequest& request) {
  HttpResponse response;
  response.serialized = server_->Process(request);
  if (response.serialized.empty()) {  // cpp-httplib wrote nothing (a request it gave up on)
    response.status = 400;
    response.body = "malformed request\n";
  }
  return response;
}

HttpServer::Handler HttplibRouter::AsHandler() {
  return [this](const HttpRequest& request) { return Handle(request); };
}

}  // namespace cropshield::http
