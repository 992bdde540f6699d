#include "server/metrics/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_endpoint.h"
#include "server/metrics/metrics_registry.h"
#include "server/metrics/server_metrics.h"
#include "tests/testing/loopback_socket.h"

namespace cropshield::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A connected TCP socket to 127.0.0.1:port from `source` (a loopback address; "" for any), or -1.
int Connect(int port, const std::string& source = "") {
  return ::cropshield::testing::ConnectLoopback(port, source, std::chrono::seconds(10));
}

std::string ReadAll(int fd) {
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
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  if (fd < 0) return "";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string response = ReadAll(fd);
  close(fd);
  return response;
}

std::string Get(int port, const std::string& path) {
  return Exchange(port, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n\r\n"));
}

// Get from `source`, with how long the whole exchange took.
std::string TimedGet(int port, const std::string& path, std::chrono::milliseconds* elapsed,
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
bool ClosedByServer(int fd, std::chrono::milliseconds timeout) {
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

bool RaiseFdLimit(rlim_t wanted) { return ::cropshield::testing::RaiseFdLimit(wanted); }

// Idle connections (they send nothing) from `sources` in turn; empty if any connect fails.
std::vector<int> OpenIdle(int port, int count, const std::vector<std::string>& sources) {
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

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// 127.0.1.1 .. 127.0.1.count: Linux routes all of 127.0.0.0/8 to the loopback interface.
std::vector<std::string> LoopbackSources(int count) {
  std::vector<std::string> sources;
  for (int i = 1; i <= count; ++i) sources.push_back(absl::StrCat("127.0.1.", i));
  return sources;
}

std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

std::unique_ptr<HttpServer> StartOrDie(HttpServer::Options options, HttpServer::Handler handler) {
  auto server = HttpServer::Start(std::move(options), std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

HttpServer::Options Loopback() {
  HttpServer::Options options;
  options.address = "127.0.0.1:0";
  return options;
}

HttpResponse Echo(const HttpRequest& request) {
  HttpResponse response;
  response.body = absl::StrCat(request.method, " ", request.path, " ", request.query, " ",
                               request.Header("x-test"));
  return response;
}

TEST(HttpServerTest, ServesOnAnEphemeralPortWithContentLengthAndClose) {
  auto server = StartOrDie(Loopback(), Echo);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->port(), 0);
  const std::string response =
      Exchange(server->port(), "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Test:  value \r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\nConnection: close\r\n"));
  EXPECT_THAT(response, HasSubstr("\r\nContent-Length: 22\r\n"));
  EXPECT_EQ(Body(response), "GET /a/b x=1&y=2 value");
}

TEST(HttpServerTest, HeadOmitsTheBodyButKeepsItsLength) {
  auto server = StartOrDie(Loopback(), Echo);
  ASSERT_NE(server, nullptr);
  const std::string response = Exchange(server->port(), "HEAD /x HTTP/1.0\r\n\r\n");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, HasSubstr("Content-Length: 9\r\n"));
  EXPECT_EQ(Body(response), "");
}

TEST(HttpServerTest, RejectsOtherMethodsMalformedAndOversizedRequests) {
  std::atomic<int> handled{0};
  HttpServer::Options options = Loopback();
  options.max_request_bytes = 1024;
  auto server = StartOrDie(options, [&handled](const HttpRequest& request) {
    ++handled;
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  const std::string post =
      Exchange(server->port(), "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_THAT(Exchange(server->port(), "hello\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(server->port(), "GET metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(server->port(), "GET / SPDY/3\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(server->port(),
                       absl::StrCat("GET / HTTP/1.1\r\nX: ", std::string(4000, 'a'), "\r\n\r\n")),
              StartsWith("HTTP/1.1 431 "));
  EXPECT_EQ(handled.load(), 0);
}

TEST(HttpServerTest, HandlerExceptionBecomes500) {
  auto server = StartOrDie(
      Loopback(), [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  ASSERT_NE(server, nullptr);
  const std::string response = Get(server->port(), "/");
  EXPECT_THAT(response, StartsWith("HTTP/1.1 500 Internal Server Error\r\n"));
  EXPECT_THAT(Body(response), HasSubstr("boom"));
}

TEST(HttpServerTest, SlowClientTimesOutWith408AndDoesNotBlockOthers) {
  HttpServer::Options options = Loopback();
  options.header_timeout = absl::Milliseconds(300);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  const int idle = Connect(server->port());  // sends nothing
  ASSERT_GE(idle, 0);
  EXPECT_THAT(Get(server->port(), "/fast"), StartsWith("HTTP/1.1 200 "));
  EXPECT_THAT(ReadAll(idle), StartsWith("HTTP/1.1 408 "));
  close(idle);
}

TEST(HttpServerTest, ServesConcurrentClients) {
  HttpServer::Options options = Loopback();
  options.handler_threads = 3;
  options.max_queued_requests = 64;
  options.max_connections_per_peer = 64;  // every client is 127.0.0.1
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      for (int j = 0; j < 10; ++j) {
        if (Body(Get(server->port(), "/c")) == "GET /c  ") ++ok;
      }
    });
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(ok.load(), 80);
}

TEST(HttpServerTest, ShutdownIsPromptWithAnIdleConnectionOpen) {
  HttpServer::Options options = Loopback();
  options.header_timeout = absl::Seconds(30);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  const int idle = Connect(server->port());
  ASSERT_GE(idle, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let a thread take it
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  close(idle);
  server->Shutdown();  // idempotent
}

TEST(HttpServerTest, ReportsAnAddressInUseAsUnavailable) {
  auto first = StartOrDie(Loopback(), Echo);
  ASSERT_NE(first, nullptr);
  HttpServer::Options options;
  options.address = absl::StrCat("127.0.0.1:", first->port());
  auto second = HttpServer::Start(options, Echo);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsUnavailable(second.status())) << second.status();
}

TEST(HttpServerTest, RejectsMalformedAddressesAndOptions) {
  HttpServer::Options options;
  for (const char* address : {"localhost", "127.0.0.1:http", "127.0.0.1:70000", "[::1:0"}) {
    options.address = address;
    EXPECT_TRUE(absl::IsInvalidArgument(HttpServer::Start(options, Echo).status())) << address;
  }
  options = Loopback();
  options.handler_threads = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(HttpServer::Start(options, Echo).status()));
  options = Loopback();
  options.max_connections_per_peer = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(HttpServer::Start(options, Echo).status()));
  options = Loopback();
  options.header_timeout = absl::ZeroDuration();
  EXPECT_TRUE(absl::IsInvalidArgument(HttpServer::Start(options, Echo).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(HttpServer::Start(Loopback(), nullptr).status()));
}

TEST(HttpServerTest, BindsIpv6LoopbackWhenAvailable) {
  HttpServer::Options options;
  options.address = "[::1]:0";
  auto server = HttpServer::Start(options, Echo);
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback: " << server.status();
  EXPECT_GT((*server)->port(), 0);
}

// Issue #20: 18 idle connections used to make every request answer 503 or reset.
TEST(HttpServerFloodTest, FiveHundredIdleConnectionsDoNotDelayProbes) {
  ASSERT_TRUE(RaiseFdLimit(4096)) << "need RLIMIT_NOFILE >= 4096";
  HttpServer::Options options = Loopback();    // default limits: 16 per peer, 1024 in all
  options.header_timeout = absl::Seconds(10);  // the idle ones stay for the whole test
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  ASSERT_GE(server->max_connections(), 1024u);
  const std::vector<int> idle = OpenIdle(server->port(), 500, LoopbackSources(50));
  ASSERT_EQ(idle.size(), 500u) << "cannot bind 127.0.1.x";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // all accepted
  for (int i = 0; i < 20; ++i) {
    std::chrono::milliseconds elapsed;
    EXPECT_THAT(TimedGet(server->port(), "/healthz", &elapsed), StartsWith("HTTP/1.1 200 "));
    EXPECT_LT(elapsed, std::chrono::seconds(1)) << "probe " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // They were held (within their header timeout), not refused.
  int still_open = 0;
  for (int fd : idle) still_open += ClosedByServer(fd, std::chrono::milliseconds(0)) ? 0 : 1;
  EXPECT_EQ(still_open, 500);
  CloseAll(idle);
}

TEST(HttpServerFloodTest, BeyondTheGlobalCapTheOldestIdleConnectionMakesRoom) {
  ASSERT_TRUE(RaiseFdLimit(1024));
  HttpServer::Options options = Loopback();
  options.max_connections = 64;
  options.max_connections_per_peer = 1000;
  options.header_timeout = absl::Seconds(30);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  const std::vector<int> idle = OpenIdle(server->port(), 200, {""});
  ASSERT_EQ(idle.size(), 200u);
  for (int i = 0; i < 10; ++i) {
    std::chrono::milliseconds elapsed;
    EXPECT_THAT(TimedGet(server->port(), "/healthz", &elapsed), StartsWith("HTTP/1.1 200 "));
    EXPECT_LT(elapsed, std::chrono::seconds(1));
  }
  EXPECT_TRUE(ClosedByServer(idle.front(), std::chrono::seconds(2)));  // the oldest went first
  EXPECT_FALSE(ClosedByServer(idle.back(), std::chrono::milliseconds(100)));
  CloseAll(idle);
}

TEST(HttpServerFloodTest, PerPeerCapClosesExtraConnectionsAtOnce) {
  HttpServer::Options options = Loopback();
  options.max_connections_per_peer = 4;
  options.header_timeout = absl::Seconds(30);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  std::vector<int> idle = OpenIdle(server->port(), 4, {"127.0.0.2"});
  ASSERT_EQ(idle.size(), 4u) << "cannot bind 127.0.0.2";
  const int extra = Connect(server->port(), "127.0.0.2");
  ASSERT_GE(extra, 0);
  EXPECT_TRUE(ClosedByServer(extra, std::chrono::seconds(2)));
  close(extra);
  for (int fd : idle) EXPECT_FALSE(ClosedByServer(fd, std::chrono::milliseconds(0)));
  std::chrono::milliseconds elapsed;
  EXPECT_THAT(TimedGet(server->port(), "/other-peer", &elapsed, "127.0.0.3"),
              StartsWith("HTTP/1.1 200 "));
  // Once one of the four is gone, that peer gets a connection again.
  close(idle.back());
  idle.pop_back();
  std::string again;
  for (int attempt = 0; attempt < 50 && again.empty(); ++attempt) {
    again = TimedGet(server->port(), "/again", &elapsed, "127.0.0.2");
    if (again.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(again, StartsWith("HTTP/1.1 200 "));
  CloseAll(idle);
}

TEST(HttpServerFloodTest, HeaderTimeoutEndsASlowlorisThatKeepsSendingHeaderLines) {
  HttpServer::Options options = Loopback();
  options.header_timeout = absl::Milliseconds(300);
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const auto start = std::chrono::steady_clock::now();
  const std::string request_line = "GET / HTTP/1.1\r\n";
  send(fd, request_line.data(), request_line.size(), MSG_NOSIGNAL);
  std::string answer;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    pollfd watched{fd, POLLIN, 0};
    if (poll(&watched, 1, 50) > 0) {
      answer = ReadAll(fd);
      break;
    }
    const std::string line = "X-Slow: 1\r\n";
    if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) < 0) break;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 408 "));
  EXPECT_GE(elapsed, std::chrono::milliseconds(250));
  EXPECT_LT(elapsed, std::chrono::milliseconds(1500));
  close(fd);
}

TEST(HttpServerTest, OversizedHeadGets431WithoutWaitingForItsEnd) {
  HttpServer::Options options = Loopback();
  options.header_timeout = absl::Seconds(30);
  auto server = StartOrDie(options, Echo);  // max_request_bytes 16 KiB
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(
      Exchange(server->port(),
               absl::StrCat("GET / HTTP/1.1\r\nX: ", std::string(20 << 10, 'a'), "\r\n\r\n")),
      StartsWith("HTTP/1.1 431 "));
  // A head that never ends: the answer comes once it passes the limit, not at the timeout.
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const auto start = std::chrono::steady_clock::now();
  const std::string endless = absl::StrCat("GET / HTTP/1.1\r\nX: ", std::string(17 << 10, 'b'));
  send(fd, endless.data(), endless.size(), MSG_NOSIGNAL);
  EXPECT_THAT(ReadAll(fd), StartsWith("HTTP/1.1 431 "));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  close(fd);
}

TEST(HttpServerTest, SlowHandlersStallNeitherAcceptingNorReadingNorOtherHandlers) {
  absl::Notification release;
  std::atomic<int> blocked{0};
  HttpServer::Options options = Loopback();
  options.handler_threads = 2;
  options.max_queued_requests = 1;
  options.header_timeout = absl::Milliseconds(300);
  auto server = StartOrDie(options, [&](const HttpRequest& request) {
    if (request.path == "/slow") {
      ++blocked;
      release.WaitForNotificationWithTimeout(absl::Seconds(20));
    }
    return Echo(request);
  });
  ASSERT_NE(server, nullptr);
  std::thread slow1(
      [&] { EXPECT_THAT(Get(server->port(), "/slow"), StartsWith("HTTP/1.1 200 ")); });
  while (blocked.load() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::chrono::milliseconds elapsed;
  EXPECT_THAT(TimedGet(server->port(), "/fast", &elapsed), StartsWith("HTTP/1.1 200 "));
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  // Both handler threads stuck: one more request waits in the queue, the next gets 503, and the
  // loop still answers what it can alone (400, 408) at once.
  std::thread slow2(
      [&] { EXPECT_THAT(Get(server->port(), "/slow"), StartsWith("HTTP/1.1 200 ")); });
  while (blocked.load() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::thread queued(
      [&] { EXPECT_THAT(Get(server->port(), "/queued"), StartsWith("HTTP/1.1 200 ")); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_THAT(TimedGet(server->port(), "/refused", &elapsed), StartsWith("HTTP/1.1 503 "));
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  EXPECT_THAT(Exchange(server->port(), "hello\r\n\r\n"), StartsWith("HTTP/1.1 400 "));
  const int idle = Connect(server->port());
  EXPECT_THAT(ReadAll(idle), StartsWith("HTTP/1.1 408 "));
  close(idle);
  release.Notify();
  slow1.join();
  slow2.join();
  queued.join();
}

TEST(HttpServerTest, SendTimeoutDropsAClientThatNeverReads) {
  const std::string big(32 << 20, 'x');
  HttpServer::Options options = Loopback();
  options.send_timeout = absl::Milliseconds(300);
  auto server = StartOrDie(options, [&big](const HttpRequest& request) {
    HttpResponse response;
    if (request.path == "/big") response.body = big;
    return response;
  });
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  const std::string request = "GET /big HTTP/1.1\r\n\r\n";
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::chrono::milliseconds elapsed;
  EXPECT_THAT(TimedGet(server->port(), "/meanwhile", &elapsed), StartsWith("HTTP/1.1 200 "));
  EXPECT_LT(elapsed, std::chrono::seconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // past the send timeout
  EXPECT_LT(ReadAll(fd).size(), big.size());
  close(fd);
}

TEST(HttpServerTest, ShutdownIsPromptWithManyIdleConnectionsAndClosesThem) {
  HttpServer::Options options = Loopback();
  options.header_timeout = absl::Seconds(30);
  options.max_connections_per_peer = 1000;
  auto server = StartOrDie(options, Echo);
  ASSERT_NE(server, nullptr);
  const std::vector<int> idle = OpenIdle(server->port(), 100, {""});
  ASSERT_EQ(idle.size(), 100u);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto start = std::chrono::steady_clock::now();
  server->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  int closed = 0;
  for (int fd : idle) closed += ClosedByServer(fd, std::chrono::seconds(1)) ? 1 : 0;
  EXPECT_EQ(closed, 100);
  CloseAll(idle);
  EXPECT_EQ(Connect(server->port()), -1);  // no longer listening
}

TEST(MetricsEndpointTest, ServesTextFormatHealthzAnd404) {
  MetricsRegistry registry;
  ServerMetrics::Options metrics_options;
  metrics_options.rpcs = {"Predict"};
  auto server_metrics = ServerMetrics::Create(metrics_options, &registry.registry());
  ASSERT_TRUE(server_metrics.ok()) << server_metrics.status();
  (*server_metrics)->RecordCall("Predict", absl::StatusCode::kOk, 0.003);
  auto endpoint = StartMetricsEndpoint("127.0.0.1:0", &registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();

  const std::string metrics = Get(port, "/metrics");
  EXPECT_THAT(metrics, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(metrics, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  const std::string body = Body(metrics);
  EXPECT_THAT(body, HasSubstr("# TYPE cropshield_request_duration_seconds histogram\n"));
  EXPECT_THAT(body, HasSubstr("cropshield_requests_total{code=\"OK\",rpc=\"Predict\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("cropshield_request_duration_seconds_bucket{code=\"OK\",rpc="
                              "\"Predict\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(Get(port, "/metrics?x=1"), StartsWith("HTTP/1.1 200 OK\r\n"));

  const std::string healthz = Get(port, "/healthz");
  EXPECT_THAT(healthz, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Body(healthz), "ok\n");
  EXPECT_THAT(Get(port, "/"), HasSubstr("href=\"/metrics\""));
  EXPECT_THAT(Get(port, "/metricsx"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Get(port, "/favicon.ico"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
}

}  // namespace
}  // namespace cropshield::metrics
