// HttpServer's start, shutdown and handler threads. Internal to it: http_event_loop.h (the loop
// thread), http_connection_table.h (connections, connection caps, eviction), http_message.h
// (request-head parsing, response serialization), http_socket.h (listen socket, peer keys).
#include "server/http/http_server.h"

#include <errno.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>
#include <exception>

#include "absl/strings/str_cat.h"
#include "server/http/http_event_loop.h"
#include "server/http/http_message.h"
#include "server/http/http_socket.h"

namespace cropshield::http {
namespace {

using internal::CloseFd;
using internal::PlainResponse;

absl::Status ValidateOptions(const HttpServer::Options& options, bool has_handler) {
  if (options.handler_threads < 1 || options.max_queued_requests < 1 ||
      options.max_request_bytes < 64 || options.header_timeout <= absl::ZeroDuration() ||
      options.send_timeout <= absl::ZeroDuration() || options.max_connections < 1 ||
      options.max_connections_per_peer < 1 || options.body_timeout <= absl::ZeroDuration() ||
      options.allowed_methods.empty() || !has_handler) {
    return absl::InvalidArgumentError(
        "http server needs handler_threads, max_queued_requests, max_connections and "
        "max_connections_per_peer >= 1, max_request_bytes >= 64, positive header_timeout, "
        "body_timeout and send_timeout, allowed methods, and a handler");
  }
  return absl::OkStatus();
}

}  // namespace

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
  server->max_connections_ = internal::ClampToDescriptorLimit(server->options_.max_connections);
  server->loop_ = std::make_unique<Loop>(server.get(), epoll_fd);  // owns epoll_fd from here
  epoll_event listen_event{};
  listen_event.events = EPOLLIN;
  listen_event.data.u64 = Loop::kListenId;
  epoll_event wake_event{};
  wake_event.events = EPOLLIN;
  wake_event.data.u64 = Loop::kWakeId;
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, server->listen_fd_, &listen_event) != 0 ||
      epoll_ctl(epoll_fd, EPOLL_CTL_ADD, server->wake_fd_, &wake_event) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", std::strerror(errno)));
  }
  // Default-size stacks (see the header): never pass attributes with a stack size here.
  HttpServer* raw = server.get();
  server->loop_thread_ = std::thread([raw] {
    pthread_setname_np(pthread_self(), (raw->options_.name + "-loop").substr(0, 15).c_str());
    raw->loop_->Run();
  });
  for (int i = 0; i < raw->options_.handler_threads; ++i) {
    server->handler_threads_.emplace_back([raw] { raw->RunHandlers(); });
  }
  return server;
}

absl::Status HttpServer::Listen() {
  absl::StatusOr<internal::ListeningSocket> listening = internal::ListenOn(options_.address);
  if (!listening.ok()) return listening.status();
  listen_fd_ = listening->fd;
  port_ = listening->port;
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
  pthread_setname_np(pthread_self(), (options_.name + "-handler").substr(0, 15).c_str());
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
    HttpResponse response = handler_(job.request);
    if (!response.serialized.empty()) return std::move(response.serialized);
    return internal::SerializeResponse(response, job.include_body);
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

}  // namespace cropshield::http
