// Internal to HttpServer: the event loop (see the top of http_server.h). It accepts connections,
// reads their request heads and bodies, answers what it can alone (400, 405, 408, 411, 413, 431,
// 503), hands complete requests to the handler threads, writes their answers and times
// connections out.
//
// Thread-safety: everything here runs on the loop thread (construction and destruction aside,
// which happen while no loop thread runs). It reaches the handler threads only through
// HttpServer's job and completion queues.
#ifndef CROPSHIELD_SERVER_HTTP_HTTP_EVENT_LOOP_H_
#define CROPSHIELD_SERVER_HTTP_HTTP_EVENT_LOOP_H_

#include <sys/epoll.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/http/http_connection_table.h"
#include "server/http/http_server.h"

namespace cropshield::http {

class HttpServer::Loop {
 public:
  static constexpr uint64_t kListenId = 0;  // epoll data of the listen socket
  static constexpr uint64_t kWakeId = 1;    // ... and of the eventfd; connections follow

  // Takes `epoll_fd`; `server` must have its options, listen socket, eventfd and
  // max_connections set.
  Loop(HttpServer* server, int epoll_fd);
  ~Loop();  // closes the connections and the epoll descriptor
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Serves until Shutdown wakes it.
  void Run();

 private:
  using Clock = internal::Clock;
  using Connection = internal::Connection;
  using Phase = internal::Phase;

  // Event handlers.
  bool HandleEvent(const epoll_event& event);  // false once Shutdown has been called
  void AcceptAll();
  bool AcceptOne();        // false when nothing (more) can be accepted now
  bool TakeCompletions();  // false once Shutdown has been called
  void OnConnectionEvent(Connection& c, uint32_t events);

  // Connection phases.
  bool Handshake(Connection& c);
  // One read into `buffer` (EINTR retried): the byte count, 0 when nothing is available yet, or -1
  // after closing the connection because the peer closed or reset it.
  ssize_t ReadAvailable(Connection& c, char* buffer, size_t size);
  void ReadHead(Connection& c);
  void Dispatch(Connection& c, absl::string_view head);
  // False (and the connection answered 413 or 503) when a body of `length` cannot be taken.
  bool AdmitBody(Connection& c, size_t length);
  void AppendBody(Connection& c, absl::string_view bytes);
  void ReadBody(Connection& c);
  void Enqueue(Connection& c);  // hands the complete request to the handler threads
  void StartWriting(Connection& c, std::string bytes);
  void ContinueWriting(Connection& c);
  void StartLingering(Connection& c);
  void DrainLingering(Connection& c);
  void ExpireTimeouts(Clock::time_point now);

  // Timing and accepting.
  void PauseAccepting(Clock::time_point now);
  void MaybeResumeAccepting(Clock::time_point now);
  int WaitMillis(Clock::time_point now) const;
  Clock::duration Timeout(Phase phase) const;

  HttpServer* const server_;
  const int epoll_fd_;
  internal::ConnectionTable connections_;
  bool accept_paused_ = false;
  Clock::time_point resume_accept_at_;
};

}  // namespace cropshield::http

#endif  // CROPSHIELD_SERVER_HTTP_HTTP_EVENT_LOOP_H_
