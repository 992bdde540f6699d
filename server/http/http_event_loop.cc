#include "server/http/http_event_loop.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/http/http_connection_io.h"
#include "server/http/http_message.h"
#include "server/http/http_socket.h"
#include "server/http/tls_context.h"

namespace cropshield::http {
namespace {

using internal::Clock;
using internal::kHandling;
using internal::kLingering;
using internal::kPhases;
using internal::kReading;
using internal::kReadingBody;
using internal::kWriting;
using internal::PlainResponse;

constexpr auto kLingerAfterResponse = std::chrono::milliseconds(100);
constexpr auto kAcceptPause = std::chrono::milliseconds(50);  // after EMFILE with nothing to drop
constexpr int kMaxAcceptsPerWakeup = 64;
constexpr int kMaxEvents = 256;
constexpr size_t kMaxDiscardPerEvent = 64 << 10;  // lingering: bytes read and dropped per wakeup
constexpr char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

// Milliseconds from `now` until `deadline`, rounded up, for epoll_wait.
int MillisUntil(Clock::time_point now, Clock::time_point deadline) {
  if (deadline <= now) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<int64_t>(left, 60'000));
}

}  // namespace

HttpServer::Loop::Loop(HttpServer* server, int epoll_fd)
    : server_(server),
      epoll_fd_(epoll_fd),
      connections_(epoll_fd, kWakeId + 1, server->max_connections_,
                   server->options_.max_connections_per_peer,
                   server->options_.max_buffered_body_bytes) {}

HttpServer::Loop::~Loop() { internal::CloseFd(epoll_fd_); }  // connections_ closes the rest

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
  } else if (Connection* c = connections_.Find(event.data.u64); c != nullptr) {
    OnConnectionEvent(*c, event.events);  // a connection closed earlier in this batch is gone
  }
  return true;
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
    std::string ip;
    int port = 0;
    internal::PeerAddress(peer, &ip, &port);
    SSL* ssl = nullptr;
    if (server_->options_.tls != nullptr &&
        (ssl = server_->options_.tls->NewSession(fd)) == nullptr) {
      close(fd);
      return true;
    }
    connections_.Admit(fd, internal::PeerKey(peer), std::move(ip), port, ssl);
    return true;
  }
  if (errno == EINTR || errno == ECONNABORTED) return true;
  if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
    // Out of descriptors or memory: make room, or stop polling a listen socket that stays
    // readable (it would spin) for a moment.
    if (connections_.EvictOldest()) return true;
    PauseAccepting(Clock::now());
  }
  return false;  // EAGAIN: nothing more to accept
}

bool HttpServer::Loop::TakeCompletions() {
  uint64_t count = 0;
  (void)!read(server_->wake_fd_, &count, sizeof(count));
  bool stopping = false;
  for (Completion& done : server_->TakeCompletions(&stopping)) {
    // Gone if the client hung up or it was evicted meanwhile.
    Connection* c = connections_.Find(done.id);
    if (c != nullptr && c->phase == kHandling) StartWriting(*c, std::move(done.bytes));
  }
  return !stopping;
}

void HttpServer::Loop::OnConnectionEvent(Connection& c, uint32_t events) {
  switch (c.phase) {
    case kReading:
      ReadHead(c);
      return;
    case kReadingBody:
      ReadBody(c);
      return;
    case kHandling:  // no interest registered: only a hang-up or an error gets here
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) connections_.Close(c);
      return;
    case kWriting:
      if ((events & (EPOLLHUP | EPOLLERR)) != 0) {
        connections_.Close(c);
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

// The TLS handshake, if any, comes first; false while it is not done (or it failed: closed).
bool HttpServer::Loop::Handshake(Connection& c) {
  switch (internal::ContinueHandshake(c)) {
    case internal::Handshake::kDone:
      return connections_.SetInterest(c, EPOLLIN | EPOLLRDHUP);
    case internal::Handshake::kWaitRead:
      connections_.SetInterest(c, EPOLLIN | EPOLLRDHUP);
      return false;
    case internal::Handshake::kWaitWrite:
      connections_.SetInterest(c, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
      return false;
    case internal::Handshake::kFailed:
      break;
  }
  connections_.Close(c);
  return false;
}

ssize_t HttpServer::Loop::ReadAvailable(Connection& c, char* buffer, size_t size) {
  for (;;) {
    const ssize_t n = internal::ReadSome(c, buffer, size);
    if (n > 0) return n;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    connections_.Close(c);  // closed or reset by the peer
    return -1;
  }
}

void HttpServer::Loop::ReadHead(Connection& c) {
  if (!c.handshake_done && c.ssl != nullptr && !Handshake(c)) return;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ReadAvailable(c, buffer, sizeof(buffer));
    if (n <= 0) return;  // nothing yet, or closed before the whole message
    const size_t scanned = c.in.size() < 3 ? 0 : c.in.size() - 3;
    c.in.append(buffer, static_cast<size_t>(n));
    const size_t end = internal::HeadEnd(c.in, scanned);
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
  absl::StatusOr<HttpRequest> request = internal::ParseHead(head);
  if (!request.ok()) {
    StartWriting(c, PlainResponse(400, absl::StrCat(request.status().message(), "\n")));
    return;
  }
  const std::vector<std::string>& allowed = server_->options_.allowed_methods;
  if (std::find(allowed.begin(), allowed.end(), request->method) == allowed.end()) {
    StartWriting(c, PlainResponse(405, absl::StrCat(request->method, " is not supported here\n"),
                                  {absl::StrCat("Allow: ", absl::StrJoin(allowed, ", "))}));
    return;
  }
  absl::StatusOr<size_t> body_length = internal::BodyLength(*request);
  if (!body_length.ok()) {
    const int status = absl::IsFailedPrecondition(body_length.status()) ? 411 : 400;
    StartWriting(c, PlainResponse(status, absl::StrCat(body_length.status().message(), "\n")));
    return;
  }
  if (!AdmitBody(c, *body_length)) return;
  request->head = std::string(head);
  request->peer_ip = c.peer_ip;
  request->peer_port = c.peer_port;
  request->verified_identities = c.verified_identities;
  // What followed the blank line is the start of the body.
  const size_t blank = c.in[head.size()] == '\r' ? 4 : 2;
  std::string rest = c.in.substr(std::min(c.in.size(), head.size() + blank));
  c.in.clear();
  c.body_length = *body_length;
  c.request = std::make_unique<HttpRequest>(*std::move(request));
  c.request->body.reserve(*body_length);
  AppendBody(c, rest);
  if (c.request->body.size() >= c.body_length) {
    Enqueue(c);
    return;
  }
  if (absl::AsciiStrToLower(c.request->Header("expect")) == "100-continue" &&
      internal::WriteSome(c, kContinue, sizeof(kContinue) - 1) !=
          static_cast<ssize_t>(sizeof(kContinue) - 1)) {
    connections_.Close(c);  // a fresh socket that cannot take 25 bytes is gone
    return;
  }
  connections_.SetPhase(c, kReadingBody, EPOLLIN | EPOLLRDHUP);
}

bool HttpServer::Loop::AdmitBody(Connection& c, size_t length) {
  if (length == 0) return true;
  const size_t limit = server_->options_.max_body_bytes;
  if (length > limit) {
    StartWriting(c, PlainResponse(413, limit == 0 ? "request bodies are not accepted here\n"
                                                  : absl::StrCat("request body of ", length,
                                                                 " bytes is over the limit of ",
                                                                 limit, " bytes\n")));
    return false;
  }
  if (!connections_.ReserveBody(c, length)) {
    StartWriting(
        c, PlainResponse(503, "too many request bodies in flight; retry\n", {"Retry-After: 1"}));
    return false;
  }
  return true;
}

void HttpServer::Loop::AppendBody(Connection& c, absl::string_view bytes) {
  const size_t wanted = c.body_length - c.request->body.size();
  c.request->body.append(bytes.data(), std::min(wanted, bytes.size()));  // drops pipelined bytes
}

void HttpServer::Loop::ReadBody(Connection& c) {
  char buffer[16384];
  while (c.request->body.size() < c.body_length) {
    const ssize_t n = ReadAvailable(c, buffer, sizeof(buffer));
    if (n <= 0) return;  // nothing yet, or closed before the whole message
    AppendBody(c, absl::string_view(buffer, static_cast<size_t>(n)));
  }
  Enqueue(c);
}

void HttpServer::Loop::Enqueue(Connection& c) {
  Job job;
  job.id = c.id;
  job.include_body = c.request->method != "HEAD";
  job.request = std::move(*c.request);
  c.request.reset();
  if (!server_->Enqueue(std::move(job))) {
    StartWriting(c, PlainResponse(503, "busy\n", {"Retry-After: 1"}));
    return;
  }
  connections_.SetPhase(c, kHandling, 0);
}

void HttpServer::Loop::StartWriting(Connection& c, std::string bytes) {
  c.in.clear();
  c.request.reset();
  c.out = std::move(bytes);
  c.sent = 0;
  if (connections_.SetPhase(c, kWriting, EPOLLOUT)) ContinueWriting(c);
}

void HttpServer::Loop::ContinueWriting(Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = internal::WriteSome(c, c.out.data() + c.sent, c.out.size() - c.sent);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // EPOLLOUT resumes
    connections_.Close(c);
    return;
  }
  StartLingering(c);
}

// Half-close, then read what the client still sends until it closes (briefly): closing a socket
// with unread input sends a reset, which can destroy the response before the client reads it.
void HttpServer::Loop::StartLingering(Connection& c) {
  internal::NotifyClose(c);
  shutdown(c.fd, SHUT_WR);
  std::string().swap(c.out);
  connections_.SetPhase(c, kLingering, EPOLLIN | EPOLLRDHUP);
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
  connections_.Close(c);  // done, or a client that keeps sending
}

HttpServer::Loop::Clock::duration HttpServer::Loop::Timeout(Phase phase) const {
  switch (phase) {
    case kReading:
      return absl::ToChronoNanoseconds(server_->options_.header_timeout);
    case kReadingBody:
      return absl::ToChronoNanoseconds(server_->options_.body_timeout);
    case kWriting:
      return absl::ToChronoNanoseconds(server_->options_.send_timeout);
    case kLingering:
      return kLingerAfterResponse;
    default:
      return Clock::duration::max();  // handling: the handler answers (the queue is bounded)
  }
}

void HttpServer::Loop::ExpireTimeouts(Clock::time_point now) {
  for (Phase phase : {kReading, kReadingBody, kWriting, kLingering}) {
    const Clock::duration timeout = Timeout(phase);
    for (Connection* c = connections_.Oldest(phase); c != nullptr && now - c->since >= timeout;
         c = connections_.Oldest(phase)) {
      if (phase == kReading || phase == kReadingBody) {
        StartWriting(*c, PlainResponse(408, "request timeout\n"));  // leaves the list
      } else {
        connections_.Close(*c);
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
  for (Phase phase : {kReading, kReadingBody, kWriting, kLingering}) {
    if (const Connection* c = connections_.Oldest(phase); c != nullptr) {
      consider(c->since + Timeout(phase));
    }
  }
  if (accept_paused_) consider(resume_accept_at_);
  return wait;
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

}  // namespace cropshield::http
