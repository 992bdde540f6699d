#include "server/metrics/http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace cropshield::metrics {
namespace {

constexpr absl::Duration kLingerAfterResponse = absl::Milliseconds(100);

void CloseFd(int fd) {
  if (fd >= 0) close(fd);
}

// Milliseconds until `deadline` for poll(2), at least 0.
int PollTimeoutMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60'000));
}

// Splits "host:port", "[v6]:port" or ":port"; the host comes back without brackets.
absl::Status SplitHostPort(absl::string_view address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "' is not host:port"));
  }
  absl::string_view h = address.substr(0, colon);
  absl::string_view p = address.substr(colon + 1);
  if (absl::StartsWith(h, "[") && absl::EndsWith(h, "]")) h = h.substr(1, h.size() - 2);
  int port_number = -1;
  if (!absl::SimpleAtoi(p, &port_number) || port_number < 0 || port_number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "' has a bad port"));
  }
  *host = std::string(h);
  *port = absl::StrCat(port_number);
  return absl::OkStatus();
}

// Writes all of `data` before `deadline`; false on error, timeout or shutdown (wake_fd readable).
bool SendAll(int fd, int wake_fd, absl::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
    pollfd fds[2] = {{fd, POLLOUT, 0}, {wake_fd, POLLIN, 0}};
    const int ready = poll(fds, 2, PollTimeoutMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || (fds[1].revents & POLLIN) != 0) return false;
  }
  return true;
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

HttpResponse PlainResponse(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

// Parses the request head (request line and header fields, without the blank line).
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

}  // namespace

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

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(Options options, Handler handler) {
  if (options.threads < 1 || options.max_pending < 1 || options.max_request_bytes < 64 ||
      options.io_timeout <= absl::ZeroDuration() || !handler) {
    return absl::InvalidArgumentError(
        "http server needs threads >= 1, max_pending >= 1, max_request_bytes >= 64, a positive "
        "io_timeout and a handler");
  }
  std::string host, port;
  if (absl::Status split = SplitHostPort(options.address, &host, &port); !split.ok()) return split;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const int gai =
      getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &addresses);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve '", options.address, "': ", gai_strerror(gai)));
  }
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler)));
  std::string last_error = "no address";
  for (addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 64) == 0) {
      server->listen_fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(addresses);
  if (server->listen_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", server->options_.address, ": ", last_error));
  }
  sockaddr_storage bound{};
  socklen_t bound_size = sizeof(bound);
  if (getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_size) == 0) {
    server->port_ =
        ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  if (pipe2(server->wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  // Default-size stacks (see the header): never pass attributes with a stack size here.
  server->acceptor_ = std::thread([raw = server.get()] { raw->AcceptLoop(); });
  for (int i = 0; i < server->options_.threads; ++i) {
    server->workers_.emplace_back([raw = server.get()] { raw->ConnectionLoop(); });
  }
  return server;
}

HttpServer::HttpServer(Options options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (wake_fds_[1] >= 0) {
    const char byte = 1;
    (void)!write(wake_fds_[1], &byte, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
  {
    absl::MutexLock lock(&mu_);
    for (int fd : pending_) CloseFd(fd);
    pending_.clear();
  }
  CloseFd(listen_fd_);
  CloseFd(wake_fds_[0]);
  CloseFd(wake_fds_[1]);
  listen_fd_ = wake_fds_[0] = wake_fds_[1] = -1;
}

void HttpServer::AcceptLoop() {
  pthread_setname_np(pthread_self(), "metrics-accept");
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
    const int ready = poll(fds, 2, -1);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((fds[1].revents & POLLIN) != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors: back off instead of spinning on a listen socket that stays readable.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        poll(&fds[1], 1, 50);
      }
      continue;
    }
    bool queued = false;
    {
      absl::MutexLock lock(&mu_);
      if (!stopping_ && pending_.size() < options_.max_pending) {
        pending_.push_back(fd);
        queued = true;
      }
    }
    if (!queued) {
      const std::string busy = SerializeResponse(PlainResponse(503, "busy\n"), true);
      (void)!send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
    }
  }
}

void HttpServer::ConnectionLoop() {
  pthread_setname_np(pthread_self(), "metrics-http");
  for (;;) {
    int fd = -1;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &HttpServer::HasWork));
      if (stopping_) return;  // Shutdown closes what is still pending
      fd = pending_.front();
      pending_.pop_front();
    }
    Serve(fd);
    close(fd);
  }
}

void HttpServer::Serve(int fd) {
  const int wake_fd = wake_fds_[0];
  const absl::Time deadline = absl::Now() + options_.io_timeout;
  std::string head;
  char buffer[4096];
  size_t end = std::string::npos;
  HttpResponse error;
  while (end == std::string::npos) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = poll(fds, 2, PollTimeoutMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if ((fds[1].revents & POLLIN) != 0) return;  // shutting down
    if (ready <= 0) {
      error = PlainResponse(408, "request timeout\n");
      break;
    }
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) return;  // closed or reset before a full head
    head.append(buffer, static_cast<size_t>(n));
    end = head.find("\r\n\r\n");
    if (end == std::string::npos) end = head.find("\n\n");
    if (end == std::string::npos && head.size() > options_.max_request_bytes) {
      error = PlainResponse(431, "request head too large\n");
      break;
    }
  }

  HttpResponse response;
  bool include_body = true;
  if (end == std::string::npos) {
    response = std::move(error);
  } else if (end > options_.max_request_bytes) {
    response = PlainResponse(431, "request head too large\n");
  } else {
    absl::StatusOr<HttpRequest> request = ParseHead(absl::string_view(head).substr(0, end));
    if (!request.ok()) {
      response = PlainResponse(400, absl::StrCat(request.status().message(), "\n"));
    } else if (request->method != "GET" && request->method != "HEAD") {
      response = PlainResponse(405, "only GET and HEAD are supported\n");
      response.headers.push_back("Allow: GET, HEAD");
    } else {
      include_body = request->method != "HEAD";
      try {
        response = handler_(*request);
      } catch (const std::exception& e) {
        response = PlainResponse(500, absl::StrCat("handler failed: ", e.what(), "\n"));
      } catch (...) {
        response = PlainResponse(500, "handler failed\n");
      }
    }
  }
  if (!SendAll(fd, wake_fd, SerializeResponse(response, include_body), deadline)) return;

  // Half-close, then read what the client still sends until it closes (briefly): closing a socket
  // with unread input sends a reset, which can destroy the response before the client reads it.
  shutdown(fd, SHUT_WR);
  const absl::Time linger_until = absl::Now() + kLingerAfterResponse;
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = poll(fds, 2, PollTimeoutMs(linger_until));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || (fds[1].revents & POLLIN) != 0) return;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (n <= 0) return;
  }
}

}  // namespace cropshield::metrics
