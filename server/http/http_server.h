// A small HTTP/1.1 server that idle or slow connections cannot starve (issue #20). It carries the
// metrics endpoint (/metrics, /healthz) and the REST front end; what a request means is the
// handler's business (both route through cpp-httplib, see httplib_router.h).
//
// Design: one event-loop thread ("<name>-loop") owns every socket: a non-blocking listen socket
// and non-blocking connections watched with epoll (level-triggered). Each connection is a small
// state machine:
//   reading  with TLS, the handshake first; then the request head, without blocking, until
//            "\r\n\r\n"; at most header_timeout from accept (then 408), at most
//            max_request_bytes (then 431);
//   body     the Content-Length bytes of the body, at most max_body_bytes (else 413 at once,
//            before reading any), at most body_timeout from the head's end (then 408); bodies
//            buffered at once are bounded by max_buffered_body_bytes (else 503); "Expect:
//            100-continue" is answered by the loop; chunked bodies get 411;
//   handling a complete request waits for or runs on a handler thread (methods outside
//            allowed_methods get 405 from the loop at once);
//   writing  the response, non-blocking, at most send_timeout;
//   lingering after a half-close, briefly reads what the client still sends, so the close does
//            not reset the response away; then the socket is closed.
// There is no keep-alive: every response says "Connection: close".
//
// Limits that keep the endpoint answering under a flood:
//   * per peer address at most max_connections_per_peer connections; more are closed at once;
//   * at most max_connections in all (clamped at Start to half of RLIMIT_NOFILE's soft limit):
//     a new connection beyond it makes room by dropping the OLDEST connection still reading its
//     head (then the oldest reading a body, the oldest lingering, the oldest writing one), so a
//     flood cannot lock out a probe, whose head arrives within milliseconds of its accept; only
//     when every connection is a request being handled is the new one closed at once. Running
//     out of descriptors in accept(2) drops the oldest the same way (or pauses accepting for
//     50 ms if none can go);
//   * complete requests waiting for a handler thread: at most max_queued_requests, more get 503.
// Handlers run on a fixed pool (handler_threads), not on the loop: a slow or stuck handler must
// never stop the loop from accepting, reading and timing connections out. A stuck pool shows as
// 503s (queue full), which is what a liveness probe should see.
//
// Why not cpp-httplib's own listener (Debian's libcpp-httplib-dev 0.11): it serves each
// connection on a pool thread that blocks in read(2) until its read timeout, so a few idle or
// trickling sockets per pool thread exhaust it. Here cpp-httplib parses and routes complete
// requests the loop has received (httplib_router.h); the loop owns the sockets.
// Why not prometheus-cpp's Exposer: its civetweb threads ask pthread_create for 100 KiB stacks,
// which cannot hold the static TLS of CUDA libtorch's libraries, so in a CUDA build the Exposer
// fails to start (see shared/gpu/README.md, pitfall 4). Every thread here is a plain std::thread
// with the default stack size; never pass pthread attributes with a stack size.
//
// Thread-safety: the handler is called on the handler threads, possibly concurrently, and must be
// thread-safe. port() and max_connections() may be called from any thread; Shutdown (also run by
// the destructor) from one thread, not from the handler. All socket state belongs to the loop
// thread; the loop and the handler threads share only the job and completion queues (mu_).
#ifndef CROPSHIELD_SERVER_HTTP_HTTP_SERVER_H_
#define CROPSHIELD_SERVER_HTTP_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cropshield::http {

class TlsContext;

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string path;    // the request target up to '?', e.g. "/metrics"
  std::string query;   // after '?', without it; empty if none
  // Header fields with lower-case names; a repeated field keeps its last value.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string head;     // the request line and header fields as received, without the blank line
  std::string body;     // Content-Length bytes
  std::string peer_ip;  // e.g. "127.0.0.1" or "::1"
  int peer_port = 0;
  // The client certificate's identities, when TLS verified one (mutual TLS).
  std::vector<std::string> verified_identities;

  // The value of header `name` (lower case), or "" if absent.
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra header lines without CRLF, e.g. "Allow: GET, HEAD".
  std::vector<std::string> headers;
  // When not empty, the whole response as it goes on the wire (status line to body), sent as is
  // instead of the fields above: for handlers that serialize their own (cpp-httplib's writer).
  std::string serialized;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  struct Options {
    // host:port; "[v6addr]:port" for IPv6; an empty host binds every address. Port 0 picks a free
    // port (see port()).
    std::string address = "0.0.0.0:9464";
    std::string name = "metrics";         // thread names: "<name>-loop", "<name>-handler"
    int handler_threads = 2;              // threads that run the handler (>= 1)
    size_t max_queued_requests = 64;      // complete requests waiting for a handler; more: 503
    size_t max_request_bytes = 16 << 10;  // request line + headers; more: 431 (>= 64)
    absl::Duration header_timeout = absl::Seconds(2);  // accept to complete head; then 408
    absl::Duration send_timeout = absl::Seconds(10);   // to send a response; then closed
    size_t max_body_bytes = 0;  // Content-Length above it: 413 (0: requests carry no body)
    absl::Duration body_timeout = absl::Seconds(30);  // head's end to complete body; then 408
    size_t max_buffered_body_bytes = 256 << 20;  // bodies of all connections at once; more: 503
    // Others get 405 with an Allow header.
    std::vector<std::string> allowed_methods = {"GET", "HEAD"};
    // TLS on every connection (the handshake counts against header_timeout); null: plaintext.
    std::shared_ptr<TlsContext> tls;
    size_t max_connections = 1024;         // open at once, all peers (see the top of this file)
    size_t max_connections_per_peer = 16;  // open at once from one IP address; more closed
  };

  // Binds and listens (errors such as "address in use" come back as UNAVAILABLE; a malformed
  // address or options as INVALID_ARGUMENT), then starts the threads.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }
  // Options::max_connections after clamping to RLIMIT_NOFILE.
  size_t max_connections() const { return max_connections_; }

  // Stops accepting, closes every connection, lets handlers already running finish and joins the
  // threads. Idempotent.
  void Shutdown();

 private:
  class Loop;  // the event loop's state and logic (http_event_loop.h); loop thread only

  // A complete request for the handler threads; `id` names the connection in the loop.
  struct Job {
    uint64_t id = 0;
    HttpRequest request;
    bool include_body = true;  // false for HEAD (ignored for HttpResponse::serialized)
  };
  // A serialized response for connection `id`.
  struct Completion {
    uint64_t id = 0;
    std::string bytes;
  };

  HttpServer(Options options, Handler handler);
  absl::Status Listen();
  bool HasJobOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !jobs_.empty();
  }
  // Called by the loop: queues `job`; false when max_queued_requests are waiting already.
  bool Enqueue(Job job) ABSL_LOCKS_EXCLUDED(mu_);
  // Called by the loop: the responses handlers finished since the last call; sets *stopping.
  std::vector<Completion> TakeCompletions(bool* stopping) ABSL_LOCKS_EXCLUDED(mu_);
  void RunHandlers() ABSL_LOCKS_EXCLUDED(mu_);  // a handler thread's body
  std::string Handle(const Job& job) const;  // the handler's serialized response (500 if it throws)
  void WakeLoop() const;

  const Options options_;
  const Handler handler_;
  size_t max_connections_ = 0;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd the loop watches: completions and Shutdown write to it
  int port_ = 0;
  std::unique_ptr<Loop> loop_;  // touched by the loop thread only while it runs
  mutable absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<Completion> completions_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread loop_thread_;
  std::vector<std::thread> handler_threads_;
  bool shut_down_ = false;  // Shutdown's own state: one caller thread
};

// "OK", "Not Found", ... for the status codes this server uses; "Unknown" otherwise.
const char* HttpReasonPhrase(int status);

}  // namespace cropshield::http

#endif  // CROPSHIELD_SERVER_HTTP_HTTP_SERVER_H_
