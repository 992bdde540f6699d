// HttpServer: requests, bodies, responses and options. Timeouts,
// connection caps and floods: http_server_limits_test.cc.
#include "server/http/http_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/http/http_test_client.h"

namespace cropshield::http {
namespace {

using http_test::Body;
using http_test::Connect;
using http_test::Echo;
using http_test::Exchange;
using http_test::Get;
using http_test::Loopback;
using http_test::ReadAll;
using http_test::StartOrDie;
using ::testing::HasSubstr;
using ::testing::StartsWith;

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

}  // namespace
}  // namespace cropshield::http
