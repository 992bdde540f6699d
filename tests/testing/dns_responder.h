// A DNS responder on a UDP loopback port for integration tests: gRPC targets such as
// dns://127.0.0.1:PORT/name:port (and `cropshield clear-cache --all-replicas`) resolve one name to
// several loopback addresses through it, which /etc/hosts cannot do.
#ifndef CROPSHIELD_TESTS_TESTING_DNS_RESPONDER_H_
#define CROPSHIELD_TESTS_TESTING_DNS_RESPONDER_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace cropshield::testing {

// Answers every DNS query over UDP: A queries with `addresses` (replaceable, as a headless
// Service's records change when replicas come and go), anything else with no records.
class DnsResponder {
 public:
  explicit DnsResponder(std::vector<std::string> addresses) : addresses_(std::move(addresses)) {
    fd_ = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    timeval timeout{0, 100000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    thread_ = std::thread([this] { Serve(); });
  }
  ~DnsResponder() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int a_queries() const { return a_queries_.load(); }
  void SetAddresses(std::vector<std::string> addresses) {
    absl::MutexLock lock(&mu_);
    addresses_ = std::move(addresses);
  }

 private:
  void Serve() {
    unsigned char query[512];
    while (!stop_) {
      sockaddr_in peer{};
      socklen_t peer_len = sizeof(peer);
      ssize_t n =
          recvfrom(fd_, query, sizeof(query), 0, reinterpret_cast<sockaddr*>(&peer), &peer_len);
      if (n < 12) continue;
      // Question: QNAME labels, QTYPE, QCLASS right after the 12-byte header.
      size_t pos = 12;
      while (pos < static_cast<size_t>(n) && query[pos] != 0) pos += query[pos] + 1;
      if (pos + 5 > static_cast<size_t>(n)) continue;
      const size_t question_end = pos + 5;
      const int qtype = (query[pos + 1] << 8) | query[pos + 2];
      std::string reply(reinterpret_cast<char*>(query), question_end);
      std::vector<std::string> addresses;
      if (qtype == 1) {
        absl::MutexLock lock(&mu_);
        addresses = addresses_;
      }
      const int answers = static_cast<int>(addresses.size());
      if (qtype == 1) a_queries_.fetch_add(1);
      reply[2] = static_cast<char>(0x84 | (query[2] & 0x01));  // QR, AA, RD copied
      reply[3] = static_cast<char>(0x80);                      // RA, NOERROR
      reply[4] = 0, reply[5] = 1;                              // QDCOUNT
      reply[6] = 0, reply[7] = static_cast<char>(answers);     // ANCOUNT
      reply[8] = reply[9] = reply[10] = reply[11] = 0;         // NSCOUNT, ARCOUNT
      for (int i = 0; i < answers; ++i) {
        in_addr ip{};
        inet_pton(AF_INET, addresses[i].c_str(), &ip);
        const unsigned char record[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4};
        reply.append(reinterpret_cast<const char*>(record), sizeof(record));
        reply.append(reinterpret_cast<const char*>(&ip), 4);
      }
      sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&peer), peer_len);
    }
  }

  absl::Mutex mu_;
  std::vector<std::string> addresses_ ABSL_GUARDED_BY(mu_);
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> a_queries_{0};
  std::thread thread_;
};

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_TESTING_DNS_RESPONDER_H_
