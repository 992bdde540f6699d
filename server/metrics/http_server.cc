#include "server/metrics/http_server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <exception>
#include <list>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace cropshield::metrics {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kLingerAfterResponse = std::chrono::milliseconds(100);
constexpr auto kAcceptPause = std::chrono::milliseconds(50);  // after EMFILE with nothing to drop
constexpr int kMaxAcceptsPerWakeup = 64;
constexpr int kMaxEvents = 256;
constexpr size_t kMaxDiscardPerEvent = 64 << 10;  // lingering: bytes read and dropped per wakeup
constexpr uint64_t kListenId = 0;                 // epoll data of the listen socket
constexpr uint64_t kWakeId = 1;                   // ... and of the eventfd

void CloseFd(int fd) {
  if (fd >= 0) close(fd);
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

absl::Status ValidateOptions(const HttpServer::Options& options, bool has_handler) {
  if (options.handler_threads < 1 || options.max_queued_requests < 1 ||
      options.max_request_bytes < 64 || options.header_timeout <= absl::ZeroDuration() ||
      options.send_timeout <= absl::ZeroDuration() || options.max_connections < 1 ||
      options.max_connections_per_peer < 1 || !has_handler) {
    return absl::InvalidArgumentError(
        "http server needs handler_threads, max_queued_requests, max_connections and "
        "max_connections_per_peer >= 1, max_request_bytes >= 64, positive header_timeout and "
        "send_timeout, and a handler");
  }
  return absl::OkStatus();
}

// Options::max_connections, at most half of the soft descriptor limit: the rest of the process
// (gRPC, model files) needs descriptors too.
size_t ClampToDescriptorLimit(size_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return wanted;
  return std::max<size_t>(1, std::min<size_t>(wanted, limit.rlim_cur / 2));
}

// The key of the per-peer limit: the peer's IP address bytes (IPv4-mapped IPv6 as IPv4).
std::string PeerKey(const sockaddr_storage& peer) {
  if (peer.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(peer);
    return std::string(reinterpret_cast<const char*>(&v4.sin_addr), sizeof(v4.sin_addr));
  }
  if (peer.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(peer);
    const char* bytes = reinterpret_cast<const char*>(&v6.sin6_addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6.sin6_addr)) return std::string(bytes + 12, 4);
    return std::string(bytes, sizeof(v6.sin6_addr));
  }
  return "";  // unix sockets and the like: one shared bucket
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

std::string PlainResponse(int status, absl::string_view body) {
  HttpResponse response;
  response.status = status;
  response.body = std::string(body);
  return SerializeResponse(response, true);
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

// Where the head in `data` ends (the offset of its blank line), searching from `from`; npos if
// it has not ended yet. Bare "\n\n" is accepted as well.
size_t HeadEnd(absl::string_view data, size_t from) {
  const size_t crlf = data.find("\r\n\r\n", from);
  const size_t lf = data.find("\n\n", from);
  return std::min(crlf, lf);
}

// Milliseconds from `now` until `deadline`, rounded up, for epoll_wait.
int MillisUntil(Clock::time_point now, Clock::time_point deadline) {
  if (deadline <= now) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<int64_t>(left, 60'000));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The event loop. Everything here runs on the loop thread (construction and destruction aside,
// which happen while no loop thread runs).

class HttpServer::Loop {
 public:
  Loop(HttpServer* server, int epoll_fd) : server_(server), epoll_fd_(epoll_fd) {}
  ~Loop();

  // Serves until Shutdown wakes it.
  void Run();

 private:
  enum Phase { kReading = 0, kHandling, kWriting, kLingering, kPhases };

  struct Connection {
    uint64_t id = 0;
    int fd = -1;
    std::string peer;  // PeerKey
    Phase phase = kReading;
    Clock::time_point since;                    // when it entered `phase`
    std::list<Connection*>::iterator position;  // in phases_[phase]
    uint32_t events = 0;                        // epoll interest
    std::string in;                             // the head received so far
    std::string out;                            // the response
    size_t sent = 0;                            // bytes of `out` sent
  };

  // Event handlers.
  bool HandleEvent(const epoll_event& event);  // false once Shutdown has been called
  void AcceptAll();
  bool AcceptOne();  // false when nothing (more) can be accepted now
  void Admit(int fd, std::string peer);
  bool TakeCompletions();  // false once Shutdown has been called
  void OnConnectionEvent(Connection& c, uint32_t events);

  // Connection phases.
  void ReadHead(Connection& c);
  void Dispatch(Connection& c, absl::string_view head);
  void StartWriting(Connection& c, std::string bytes);
  void ContinueWriting(Connection& c);
  void StartLingering(Connection& c);
  void DrainLingering(Connection& c);
  void ExpireTimeouts(Clock::time_point now);

  // Bookkeeping.
  bool SetPhase(Connection& c, Phase phase, uint32_t events);  // false: closed instead
  void Close(Connection& c);
  bool EvictOldest();
  void PauseAccepting(Clock::time_point now);
  void MaybeResumeAccepting(Clock::time_point now);
  int WaitMillis(Clock::time_point now) const;
  Clock::duration Timeout(Phase phase) const;
  Connection* Find(uint64_t id);

  HttpServer* const server_;
  const int epoll_fd_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections_;
  absl::flat_hash_map<std::string, size_t> per_peer_;
  // Connections by phase, each list in the order they entered that phase: the front of a list is
  // the oldest and the first to time out.
  std::array<std::list<Connection*>, kPhases> phases_;
  uint64_t next_id_ = kWakeId + 1;
  bool accept_paused_ = false;
  Clock::time_point resume_accept_at_;
};

HttpServer::Loop::~Loop() {
  for (auto& [id, c] : connections_) CloseFd(c->fd);
  CloseFd(epoll_fd_);
}

void HttpServer::Loop::Run() {
  std::array<epoll_event, kMaxEvents> events;
  for (;;) {
    const int ready = epoll_wait(epoll_fd_, events.data(), kMaxEvents, WaitMillis(Clock::now()));
    if (ready < 0 && errno != EINTR) return;  // only on a broken epoll descriptor
    for (int i = 0; i < ready; ++i) {
      if (!HandleEvent(events[i])) return;
    }
    const Clock::time_point now = Clock::now();
    ExpireTimeouts(now);
    MaybeResumeAccepting(now);
  }
}

bool HttpServer::Loop::HandleEvent(const epoll_event& event) {
  if (event.data.u64 == kListenId) {
    AcceptAll();
  } else if (event.data.u64 == kWakeId) {
    return TakeCompletions();
  } else if (Connection* c = Find(event.data.u64); c != nullptr) {
    OnConnectionEvent(*c, event.events);  // a connection closed earlier in this batch is gone
  }
  return true;
}

HttpServer::Loop::Connection* HttpServer::Loop::Find(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

void HttpServer::Loop::AcceptAll() {
  for (int i = 0; i < kMaxAcceptsPerWakeup && !accept_paused_; ++i) {
    if (!AcceptOne()) return;
  }
}

bool HttpServer::Loop::AcceptOne() {
  sockaddr_storage peer{};
  socklen_t peer_size = sizeof(peer);
  const int fd = accept4(server_->listen_fd_, reinterpret_cast<sockaddr*>(&peer), &peer_size,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    Admit(fd, PeerKey(peer));
    return true;
  }
  if (errno == EINTR || errno == ECONNABORTED) return true;
  if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
    // Out of descriptors or memory: make room, or stop polling a listen socket that stays
    // readable (it would spin) for a moment.
    if (EvictOldest()) return true;
    PauseAccepting(Clock::now());
  }
  return false;  // EAGAIN: nothing more to accept
}

void HttpServer::Loop::Admit(int fd, std::string peer) {
  auto counted = per_peer_.find(peer);
  const size_t from_peer = counted == per_peer_.end() ? 0 : counted->second;
  if (from_peer >= server_->options_.max_connections_per_peer ||
      (connections_.size() >= server_->max_connections_ && !EvictOldest())) {
    close(fd);
    return;
  }
  auto owned = std::make_unique<Connection>();
  Connection& c = *owned;
  c.id = next_id_++;
  c.fd = fd;
  c.events = EPOLLIN | EPOLLRDHUP;
  epoll_event event{};
  event.events = c.events;
  event.data.u64 = c.id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    close(fd);
    return;
  }
  ++per_peer_[peer];
  c.peer = std::move(peer);
  c.since = Clock::now();
  c.position = phases_[kReading].insert(phases_[kReading].end(), &c);
  connections_.emplace(c.id, std::move(owned));
}

bool HttpServer::Loop::TakeCompletions() {
  uint64_t count = 0;
  (void)!read(server_->wake_fd_, &count, sizeof(count));
  bool stopping = false;
  for (Completion& done : server_->TakeCompletions(&stopping)) {
    Connection* c = Find(done.id);  // gone if the client hung up or it was evicted meanwhile
    if (c != nullptr && c->phase == kHandling) StartWriting(*c, std::move(done.bytes));
  }
  return !stopping;
}

void HttpServer::Loop::OnConnectionEvent(Connection& c, uint32_t events) {
  switch (c.phase) {
    case kReading:
      ReadHead(c);
      return;
    case kHandling:  // no interest registered: only a hang-up or an error gets here
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) Close(c);
      return;
    case kWriting:
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
        Close(c);
      } else {
        ContinueWriting(c);
      }
      return;
    case kLingering:
      DrainLingering(c);
      return;
    case kPhases:
      return;
  }
}

void HttpServer::Loop::ReadHead(Connection& c) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {  // closed or reset before a complete head
      Close(c);
      return;
    }
    const size_t scanned = c.in.size() < 3 ? 0 : c.in.size() - 3;
    c.in.append(buffer, static_cast<size_t>(n));
    const size_t end = HeadEnd(c.in, scanned);
    if (end != std::string::npos) {
      Dispatch(c, absl::string_view(c.in).substr(0, end));
      return;
    }
    if (c.in.size() > server_->options_.max_request_bytes) {
      StartWriting(c, PlainResponse(431, "request head too large\n"));
      return;
    }
  }
}

void HttpServer::Loop::Dispatch(Connection& c, absl::string_view head) {
  if (head.size() > server_->options_.max_request_bytes) {
    StartWriting(c, PlainResponse(431, "request head too large\n"));
    return;
  }
  absl::StatusOr<HttpRequest> request = ParseHead(head);
  if (!request.ok()) {
    StartWriting(c, PlainResponse(400, absl::StrCat(request.status().message(), "\n")));
    return;
  }
  if (request->method != "GET" && request->method != "HEAD") {
    HttpResponse response;
    response.status = 405;
    response.body = "only GET and HEAD are supported\n";
    response.headers.push_back("Allow: GET, HEAD");
    StartWriting(c, SerializeResponse(response, true));
    return;
  }
  Job job;
  job.id = c.id;
  job.include_body = request->method != "HEAD";
  job.request = *std::move(request);
  if (!server_->Enqueue(std::move(job))) {
    StartWriting(c, PlainResponse(503, "busy\n"));
    return;
  }
  c.in.clear();
  SetPhase(c, kHandling, 0);
}

void HttpServer::Loop::StartWriting(Connection& c, std::string bytes) {
  c.in.clear();
  c.out = std::move(bytes);
  c.sent = 0;
  if (SetPhase(c, kWriting, EPOLLOUT)) ContinueWriting(c);
}

void HttpServer::Loop::ContinueWriting(Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT resumes
    Close(c);
    return;
  }
  StartLingering(c);
}

// Half-close, then read what the client still sends until it closes (briefly): closing a socket
// with unread input sends a reset, which can destroy the response before the client reads it.
void HttpServer::Loop::StartLingering(Connection& c) {
  shutdown(c.fd, SHUT_WR);
  std::string().swap(c.out);
  SetPhase(c, kLingering, EPOLLIN | EPOLLRDHUP);
}

void HttpServer::Loop::DrainLingering(Connection& c) {
  char buffer[4096];
  for (size_t drained = 0; drained < kMaxDiscardPerEvent;) {
    const ssize_t n = recv(c.fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) break;  // the client closed (or reset): done
    drained += static_cast<size_t>(n);
  }
  Close(c);  // done, or a client that keeps sending
}

Clock::duration HttpServer::Loop::Timeout(Phase phase) const {
  switch (phase) {
    case kReading:
      return absl::ToChronoNanoseconds(server_->options_.header_timeout);
    case kWriting:
      return absl::ToChronoNanoseconds(server_->options_.send_timeout);
    case kLingering:
      return kLingerAfterResponse;
    default:
      return Clock::duration::max();  // handling: the handler answers (the queue is bounded)
  }
}

void HttpServer::Loop::ExpireTimeouts(Clock::time_point now) {
  for (Phase phase : {kReading, kWriting, kLingering}) {
    const Clock::duration timeout = Timeout(phase);
    std::list<Connection*>& list = phases_[phase];
    while (!list.empty() && now - list.front()->since >= timeout) {
      Connection& c = *list.front();
      if (phase == kReading) {
        StartWriting(c, PlainResponse(408, "request timeout\n"));  // leaves the list
      } else {
        Close(c);
      }
    }
  }
}

int HttpServer::Loop::WaitMillis(Clock::time_point now) const {
  int wait = -1;
  auto consider = [&](Clock::time_point deadline) {
    const int ms = MillisUntil(now, deadline);
    wait = wait < 0 ? ms : std::min(wait, ms);
  };
  for (Phase phase : {kReading, kWriting, kLingering}) {
    if (!phases_[phase].empty()) consider(phases_[phase].front()->since + Timeout(phase));
  }
  if (accept_paused_) consider(resume_accept_at_);
  return wait;
}

bool HttpServer::Loop::SetPhase(Connection& c, Phase phase, uint32_t events) {
  phases_[c.phase].erase(c.position);
  c.phase = phase;
  c.since = Clock::now();
  c.position = phases_[phase].insert(phases_[phase].end(), &c);
  if (events == c.events) return true;
  c.events = events;
  epoll_event event{};
  event.events = events;
  event.data.u64 = c.id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &event) == 0) return true;
  Close(c);
  return false;
}

void HttpServer::Loop::Close(Connection& c) {
  phases_[c.phase].erase(c.position);
  if (auto counted = per_peer_.find(c.peer); counted != per_peer_.end() && --counted->second == 0) {
    per_peer_.erase(counted);
  }
  if (c.phase == kWriting) {
    // Unsent response bytes would keep the kernel sending to a reader that does not read:
    // reset instead, which frees the socket buffers at once.
    const linger abort{1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
  }
  close(c.fd);               // also removes it from the epoll set
  connections_.erase(c.id);  // destroys c
}

// Drops the connection that matters least: the oldest still reading its head, else the oldest
// lingering, else the oldest writing. Requests being handled are never dropped. False if none.
bool HttpServer::Loop::EvictOldest() {
  for (Phase phase : {kReading, kLingering, kWriting}) {
    if (!phases_[phase].empty()) {
      Close(*phases_[phase].front());
      return true;
    }
  }
  return false;
}

void HttpServer::Loop::PauseAccepting(Clock::time_point now) {
  epoll_event event{};
  event.data.u64 = kListenId;
  event.events = 0;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, server_->listen_fd_, &event);
  accept_paused_ = true;
  resume_accept_at_ = now + kAcceptPause;
}

void HttpServer::Loop::MaybeResumeAccepting(Clock::time_point now) {
  if (!accept_paused_ || now < resume_accept_at_) return;
  epoll_event event{};
  event.data.u64 = kListenId;
  event.events = EPOLLIN;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, server_->listen_fd_, &event);
  accept_paused_ = false;
}

// ---------------------------------------------------------------------------------------------
// HttpServer

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
  if (absl::Status valid = ValidateOptions(options, handler != nullptr); !valid.ok()) return valid;
  std::unique_ptr<HttpServer> server(new HttpServer(std::move(options), std::move(handler)));
  if (absl::Status listening = server->Listen(); !listening.ok()) return listening;
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  server->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || server->wake_fd_ < 0) {
    CloseFd(epoll_fd);
    return absl::InternalError(absl::StrCat("epoll/eventfd: ", std::strerror(errno)));
  }
  server->loop_ = std::make_unique<Loop>(server.get(), epoll_fd);  // owns epoll_fd from here
  epoll_event listen_event{};
  listen_event.events = EPOLLIN;
  listen_event.data.u64 = kListenId;
  epoll_event wake_event{};
  wake_event.events = EPOLLIN;
  wake_event.data.u64 = kWakeId;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, server->listen_fd_, &listen_event) != 0 ||
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, server->wake_fd_, &wake_event) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", std::strerror(errno)));
  }
  server->max_connections_ = ClampToDescriptorLimit(server->options_.max_connections);
  // Default-size stacks (see the header): never pass attributes with a stack size here.
  HttpServer* raw = server.get();
  server->loop_thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), "metrics-http");
    raw->loop_->Run();
  });
  for (int i = 0; i < raw->options_.handler_threads; ++i) {
    server->handler_threads_.emplace_back([raw] { raw->RunHandlers(); });
  }
  return server;
}

absl::Status HttpServer::Listen() {
  std::string host, port;
  if (absl::Status split = SplitHostPort(options_.address, &host, &port); !split.ok()) return split;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const int gai =
      getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &addresses);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve '", options_.address, "': ", gai_strerror(gai)));
  }
  std::string last_error = "no address";
  for (addrinfo* a = addresses; a != nullptr && listen_fd_ < 0; a = a->ai_next) {
    const int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
      listen_fd_ = fd;
      break;
    }
    last_error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(addresses);
  if (listen_fd_ < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.address, ": ", last_error));
  }
  sockaddr_storage bound{};
  socklen_t bound_size = sizeof(bound);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_size) == 0) {
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                              : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }
  return absl::OkStatus();
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
  WakeLoop();
  if (loop_thread_.joinable()) loop_thread_.join();
  for (std::thread& thread : handler_threads_) {
    if (thread.joinable()) thread.join();
  }
  handler_threads_.clear();
  loop_.reset();  // closes the connections and the epoll descriptor
  CloseFd(listen_fd_);
  CloseFd(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

bool HttpServer::Enqueue(Job job) {
  absl::MutexLock lock(&mu_);
  if (jobs_.size() >= options_.max_queued_requests) return false;
  jobs_.push_back(std::move(job));
  return true;
}

std::vector<HttpServer::Completion> HttpServer::TakeCompletions(bool* stopping) {
  std::vector<Completion> taken;
  absl::MutexLock lock(&mu_);
  taken.swap(completions_);
  *stopping = stopping_;
  return taken;
}

void HttpServer::RunHandlers() {
  pthread_setname_np(pthread_self(), "metrics-handler");
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &HttpServer::HasJobOrStopping));
      if (stopping_) return;  // queued jobs die with their connections
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Completion done{job.id, Handle(job)};
    {
      absl::MutexLock lock(&mu_);
      completions_.push_back(std::move(done));
    }
    WakeLoop();
  }
}

std::string HttpServer::Handle(const Job& job) const {
  try {
    return SerializeResponse(handler_(job.request), job.include_body);
  } catch (const std::exception& e) {
    return PlainResponse(500, absl::StrCat("handler failed: ", e.what(), "\n"));
  } catch (...) {
    return PlainResponse(500, "handler failed\n");
  }
}

void HttpServer::WakeLoop() const {
  const uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
}

}  // namespace cropshield::metrics
