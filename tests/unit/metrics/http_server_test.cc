#include "server/metrics/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_endpoint.h"
#include "server/metrics/metrics_registry.h"
#include "server/metrics/server_metrics.h"

namespace cropshield::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A connected TCP socket to 127.0.0.1:port (-1 on failure).
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
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
  options.threads = 2;
  options.io_timeout = absl::Milliseconds(300);
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
  options.threads = 3;
  options.max_pending = 64;
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
  options.io_timeout = absl::Seconds(30);
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
  options.threads = 0;
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
