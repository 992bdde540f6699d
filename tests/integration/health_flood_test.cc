// The real cropshield-server's metrics port (/healthz for the liveness probe, /metrics for
// Prometheus) under a flood of idle TCP connections (issue #20): 500 connections that never send a
// byte, from 100 loopback addresses, kept open for the whole test (each one the server closes is
// opened again), while GET /healthz must answer 200 within 1 s, 20 times over 10 s, and /metrics
// scrapes must succeed. The server of the thread-per-connection era answered 503 or reset to every
// probe as soon as 18 idle connections were open.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/loopback_socket.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kServer;
using ::cropshield::testing::ServerProcess;
using ::testing::HasSubstr;

constexpr int kFloodConnections = 500;
constexpr int kFloodSources = 100;  // 127.0.1.1 .. 127.0.1.100, 5 connections each
constexpr int kProbes = 20;
constexpr auto kProbeInterval = std::chrono::milliseconds(500);
constexpr auto kProbeTimeout = std::chrono::seconds(1);

bool RaiseFdLimit(rlim_t wanted) { return ::cropshield::testing::RaiseFdLimit(wanted); }

// A TCP connection from `source` (an IPv4 loopback address; "" for any) to 127.0.0.1:port, or -1.
int ConnectFrom(const std::string& source, int port, std::chrono::milliseconds timeout) {
  return ::cropshield::testing::ConnectLoopback(port, source, timeout);
}

struct HttpResult {
  int status = 0;  // 0: no complete answer (refused, reset, timed out)
  std::string body;
  std::chrono::milliseconds elapsed{0};
};

// GET `path` from 127.0.0.1 with one deadline for connect, send and the whole answer.
HttpResult HttpGet(int port, const std::string& path, std::chrono::milliseconds timeout) {
  const auto start = std::chrono::steady_clock::now();
  HttpResult result;
  const int fd = ConnectFrom("", port, timeout);
  if (fd >= 0) {
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: probe\r\n\r\n");
    std::string response;
    if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
        static_cast<ssize_t>(request.size())) {
      char buffer[16384];
      for (;;) {
        const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
        if (n <= 0) break;
        response.append(buffer, static_cast<size_t>(n));
      }
    }
    close(fd);
    std::smatch match;
    if (std::regex_search(response, match, std::regex("^HTTP/1\\.[01] ([0-9]{3}) "))) {
      result.status = std::stoi(match[1]);
      const size_t end = response.find("\r\n\r\n");
      if (end != std::string::npos) result.body = response.substr(end + 4);
    }
  }
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  if (result.elapsed > timeout) result.status = 0;
  return result;
}

// Keeps `count` idle connections open to the port, spread over kFloodSources loopback addresses:
// a thread watches them and opens again every one the server closes or resets.
class IdleFlood {
 public:
  IdleFlood(int port, int count) : port_(port), fds_(count, -1) {
    for (size_t i = 0; i < fds_.size(); ++i) fds_[i] = Open(i);
    thread_ = std::thread([this] { Run(); });
  }
  ~IdleFlood() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }

  // Connections open right now (as far as this side knows).
  int open() const { return open_.load(); }
  // Connections the server closed (each was opened again).
  int reopened() const { return reopened_.load(); }

 private:
  int Open(size_t i) {
    const std::string source = absl::StrCat("127.0.1.", 1 + i % kFloodSources);
    const int fd = ConnectFrom(source, port_, std::chrono::milliseconds(500));
    if (fd >= 0) ++open_;
    return fd;
  }

  void Run() {
    std::vector<pollfd> watched(fds_.size());
    while (!stop_) {
      for (size_t i = 0; i < fds_.size(); ++i) watched[i] = {fds_[i], POLLIN | POLLRDHUP, 0};
      poll(watched.data(), watched.size(), 50);
      for (size_t i = 0; i < fds_.size() && !stop_; ++i) {
        if (fds_[i] >= 0 && watched[i].revents == 0) continue;
        if (fds_[i] >= 0) {  // the server answered (408), closed or reset it
          close(fds_[i]);
          --open_;
          ++reopened_;
        }
        fds_[i] = Open(i);
      }
    }
  }

  const int port_;
  std::vector<int> fds_;  // owned by the thread while it runs
  std::atomic<bool> stop_{false};
  std::atomic<int> open_{0};
  std::atomic<int> reopened_{0};
  std::thread thread_;
};

int MetricsPort(const ServerProcess& server) {
  std::smatch match;
  const std::string log = server.Log();
  if (!std::regex_search(log, match, std::regex("metrics listening on port ([0-9]+)"))) return 0;
  return std::stoi(match[1]);
}

TEST(HealthFloodTest, HealthzAndMetricsAnswerWhileIdleConnectionsFloodTheMetricsPort) {
  ASSERT_TRUE(RaiseFdLimit(4096)) << "need RLIMIT_NOFILE >= 4096 for the flood";
  auto server = ServerProcess::Start(
      kServer, {"--model=" + kDemoRepository, "--metrics_address=127.0.0.1:0", "--workers=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(120)).ok()) << (*server)->Log();
  ASSERT_TRUE((*server)->WaitForLog("metrics listening on port", std::chrono::seconds(10)).ok());
  const int port = MetricsPort(**server);
  ASSERT_GT(port, 0) << (*server)->Log();
  ASSERT_EQ(HttpGet(port, "/healthz", kProbeTimeout).status, 200);

  IdleFlood flood(port, kFloodConnections);
  ASSERT_GE(flood.open(), kFloodConnections * 9 / 10) << "could not open the flood";
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the server take them all
  int healthy = 0, scraped = 0, scrapes = 0;
  std::chrono::milliseconds slowest{0};
  for (int i = 0; i < kProbes; ++i) {
    const auto next = std::chrono::steady_clock::now() + kProbeInterval;
    const HttpResult probe = HttpGet(port, "/healthz", kProbeTimeout);
    slowest = std::max(slowest, probe.elapsed);
    if (probe.status == 200 && probe.body == "ok\n") {
      ++healthy;
    } else {
      ADD_FAILURE() << "probe " << i << ": status " << probe.status << " after "
                    << probe.elapsed.count() << " ms with " << flood.open()
                    << " idle connections open";
    }
    if (i % 4 == 0) {
      ++scrapes;
      const HttpResult scrape = HttpGet(port, "/metrics", std::chrono::seconds(5));
      if (scrape.status == 200 && scrape.body.find("cropshield_") != std::string::npos) {
        ++scraped;
      } else {
        ADD_FAILURE() << "scrape " << i / 4 << ": status " << scrape.status << " after "
                      << scrape.elapsed.count() << " ms";
      }
    }
    std::this_thread::sleep_for(next - std::chrono::steady_clock::now());
  }
  EXPECT_EQ(healthy, kProbes);
  EXPECT_EQ(scraped, scrapes);
  EXPECT_GE(flood.open(), kFloodConnections * 9 / 10) << "the flood did not stay open";
  std::cout << "idle flood: " << flood.open() << " open at the end, " << flood.reopened()
            << " closed by the server and opened again; slowest probe " << slowest.count()
            << " ms\n";
}

}  // namespace
}  // namespace cropshield
