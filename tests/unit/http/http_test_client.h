// Clients and servers for the HttpServer tests (http_server_test.cc: requests, responses and
// options; http_server_limits_test.cc: timeouts, connection caps, floods and shutdown): raw
// sockets to 127.0.0.1, so that a test controls every byte and every connection.
#ifndef CROPSHIELD_TESTS_UNIT_HTTP_HTTP_TEST_CLIENT_H_
#define CROPSHIELD_TESTS_UNIT_HTTP_HTTP_TEST_CLIENT_H_

#include <errno.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/http/http_server.h"
#include "tests/testing/loopback_socket.h"

namespace cropshield::http::http_test {

// A connected TCP socket to 127.0.0.1:port from `source` (a loopback address; "" for any), or -1.
inline int Connect(int port, const std::string& source = "") {
  return ::cropshield::testing::ConnectLoopback(port, source, std::chrono::seconds(10));
}

inline std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    out.append(buffer, static_cast<size_t>(n));
  }
  return out;
}

// Sends `request` as is and returns everything the server answers until it closes.
inline std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response = ReadAll(fd);
  close(fd);
  return response;
}

inline std::string Get(int port, const std::string& path) {
  return Exchange(port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n"));
}

// Get from `source`, with how long the whole exchange took.
inline std::string TimedGet(int port, const std::string& path, std::chrono::milliseconds* elapsed,
                            const std::string& source = "") {
  const auto start = std::chrono::steady_clock::now();
  std::string response;
  const int fd = Connect(port, source);
  if (fd >= 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: h\r\n\r\n");
    send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    response = ReadAll(fd);
    close(fd);
  }
  *elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  return response;
}

// True when the server closed or reset `fd` (after any answer) within `timeout`.
inline bool ClosedByServer(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd watched{fd, POLLIN | POLLRDHUP, 0};
    if (left.count() <= 0 || poll(&watched, 1, static_cast<int>(left.count())) <= 0) return false;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
}

inline bool RaiseFdLimit(rlim_t wanted) { return ::cropshield::testing::RaiseFdLimit(wanted); }

// Idle connections (they send nothing) from `sources` in turn; empty if any connect fails.
inline std::vector<int> OpenIdle(int port, int count, const std::vector<std::string>& sources) {
  std::vector<int> fds;
  for (int i = 0; i < count; ++i) {
    const int fd = Connect(port, sources[static_cast<size_t>(i) % sources.size()]);
    if (fd < 0) break;
    fds.push_back(fd);
  }
  if (fds.size() != static_cast<size_t>(count)) {
    for (int fd : fds) close(fd);
    fds.clear();
  }
  return fds;
}

inline void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// 127.0.1.1 .. 127.0.1.count: Linux routes all of 127.0.0.0/8 to the loopback interface.
inline std::vector<std::string> LoopbackSources(int count) {
  std::vector<std::string> sources;
  for (int i = 1; i <= count; ++i) sources.push_back(absl::StrCat("127.0.1.", i));
  return sources;
}

inline std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

inline std::unique_ptr<HttpServer> StartOrDie(HttpServer::Options options,
                                              HttpServer::Handler handler) {
  auto server = HttpServer::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

inline HttpServer::Options Loopback() {
  HttpServer::Options options;
  options.address = "127.0.0.1:0";
  return options;
}

inline HttpResponse Echo(const HttpRequest& request) {
  HttpResponse response;
  response.body = absl::StrCat(request.method, " ", request.path, " ", request.query, " ",
                               request.Header("x-test"));
  return response;
}

}  // namespace cropshield::http::http_test

#endif  // CROPSHIELD_TESTS_UNIT_HTTP_HTTP_TEST_CLIENT_H_
