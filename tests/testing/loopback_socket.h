// Raw TCP sockets to servers under test on 127.0.0.1, for tests that speak to a port byte by byte
// (the metrics HTTP server, idle-connection floods). Header-only: unit and integration tests share
// it without a library.
#ifndef CROPSHIELD_TESTS_TESTING_LOOPBACK_SOCKET_H_
#define CROPSHIELD_TESTS_TESTING_LOOPBACK_SOCKET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

namespace cropshield::testing {

// A TCP connection to 127.0.0.1:port from `source` (an IPv4 loopback address such as "127.0.1.7",
// so that tests can be many peers; "" for any), whose sends and receives (and connect itself) time
// out after `timeout`; -1 on failure.
inline int ConnectLoopback(int port, const std::string& source, std::chrono::milliseconds timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // bounds connect(2) too
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (!source.empty()) {
    inet_pton(AF_INET, source.c_str(), &address.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      close(fd);
      return -1;
    }
  }
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Raises the soft open-file limit to at least `wanted` (inherited by servers the test starts), for
// tests that hold hundreds of connections on both ends; false if the hard limit is lower.
inline bool RaiseFdLimit(rlim_t wanted) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur >= wanted) return true;
  limit.rlim_cur = std::min(wanted, limit.rlim_max);
  return setrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur >= wanted;
}

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_TESTING_LOOPBACK_SOCKET_H_
