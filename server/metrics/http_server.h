// A small HTTP/1.1 server for the metrics endpoint: one acceptor thread and a few connection
// threads, all plain std::threads with the default stack size, one request per connection
// (every response says "Connection: close").
//
// Why not prometheus-cpp's Exposer: its civetweb threads ask pthread_create for 100 KiB stacks,
// which cannot hold the static TLS of CUDA libtorch's libraries, so in a CUDA build the Exposer
// fails to start (see shared/gpu/README.md, pitfall 4). Threads here never set a stack size.
//
// Scope: GET and HEAD of small resources for scrapers and probes. Request bodies are not read;
// requests whose head exceeds max_request_bytes get 431, malformed ones 400, other methods 405.
// Connections beyond what the threads and the pending queue can take get 503 at once.
//
// Thread-safety: the handler is called on the connection threads, possibly concurrently, and must
// be thread-safe. port() may be called from any thread; Shutdown (also run by the destructor) from
// one thread, not from the handler.
#ifndef CROPSHIELD_SERVER_METRICS_HTTP_SERVER_H_
#define CROPSHIELD_SERVER_METRICS_HTTP_SERVER_H_

#include <cstddef>
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

namespace cropshield::metrics {

struct HttpRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string path;    // the request target up to '?', e.g. "/metrics"
  std::string query;   // after '?', without it; empty if none
  // Header fields with lower-case names; a repeated field keeps its last value.
  std::vector<std::pair<std::string, std::string>> headers;

  // The value of header `name` (lower case), or "" if absent.
  std::string Header(const std::string& name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra header lines without CRLF, e.g. "Allow: GET, HEAD".
  std::vector<std::string> headers;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  struct Options {
    // host:port; "[v6addr]:port" for IPv6; an empty host binds every address. Port 0 picks a free
    // port (see port()).
    std::string address = "0.0.0.0:9464";
    int threads = 2;                      // connection threads (>= 1)
    size_t max_pending = 16;              // accepted connections waiting for a thread (>= 1)
    size_t max_request_bytes = 16 << 10;  // request line + headers
    absl::Duration io_timeout = absl::Seconds(10);  // to receive the head or send the response
  };

  // Binds and listens (errors such as "address in use" come back as UNAVAILABLE; a malformed
  // address or options as INVALID_ARGUMENT), then starts the threads.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(Options options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port actually bound.
  int port() const { return port_; }

  // Stops accepting, interrupts waiting reads, lets a handler already running finish and joins
  // the threads. Idempotent.
  void Shutdown();

 private:
  HttpServer(Options options, Handler handler);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !pending_.empty(); }
  void AcceptLoop();
  void ConnectionLoop();
  void Serve(int fd);

  const Options options_;
  const Handler handler_;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};  // a pipe; its read end becomes readable on Shutdown
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::deque<int> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  bool shut_down_ = false;
};

// "OK", "Not Found", ... for the status codes this server uses; "Unknown" otherwise.
const char* HttpReasonPhrase(int status);

}  // namespace cropshield::metrics

#endif  // CROPSHIELD_SERVER_METRICS_HTTP_SERVER_H_
