// HttpServer under slow and idle clients, slow handlers and floods (issue #20): header and send
// timeouts, the per-peer and global connection caps, the handler queue's limit, prompt shutdown.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/http_server.h"
#include "tests/unit/http/http_test_client.h"

namespace cropshield::http {
namespace {

using http_test::CloseAll;
using http_test::ClosedByServer;
using http_test::Connect;
using http_test::Echo;
using http_test::Exchange;
using http_test::Get;
using http_test::Loopback;
using http_test::LoopbackSources;
using http_test::OpenIdle;
using http_test::RaiseFdLimit;
using http_test::ReadAll;
using http_test::StartOrDie;
using http_test::TimedGet;
using ::testing::StartsWith;

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

}  // namespace
}  // namespace cropshield::http
