// Internal to HttpServer: the event loop's open connections, their phases, the per-peer and
// global connection caps, and which connection goes first when room is needed.
//
// Thread-safety: none; the loop thread owns the table (construction and destruction aside, which
// happen while no loop thread runs).
#ifndef CROPSHIELD_SERVER_HTTP_HTTP_CONNECTION_TABLE_H_
#define CROPSHIELD_SERVER_HTTP_HTTP_CONNECTION_TABLE_H_

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "server/http/http_server.h"

typedef struct ssl_st SSL;

namespace cropshield::http::internal {

using Clock = std::chrono::steady_clock;

// A connection's state (see the top of http_server.h).
enum Phase { kReading = 0, kReadingBody, kHandling, kWriting, kLingering, kPhases };

struct Connection {
  uint64_t id = 0;
  int fd = -1;
  std::string peer;  // PeerKey
  std::string peer_ip;
  int peer_port = 0;
  Phase phase = kReading;
  Clock::time_point since;                    // when it entered `phase`
  std::list<Connection*>::iterator position;  // in the table's list of `phase`
  uint32_t events = 0;                        // epoll interest
  SSL* ssl = nullptr;                         // TLS session (owned); null for plaintext
  bool handshake_done = false;
  std::vector<std::string> verified_identities;  // of a verified client certificate
  std::string in;                                // the head received so far
  std::unique_ptr<HttpRequest> request;          // while reading its body
  size_t body_length = 0;                        // Content-Length of `request`
  size_t reserved_body_bytes = 0;                // of the table's body budget, until closed
  std::string out;                               // the response
  size_t sent = 0;                               // bytes of `out` sent
};

class ConnectionTable {
 public:
  // Registers connections with `epoll_fd` (not owned), under the epoll data of their id; ids start
  // at `first_id`.
  ConnectionTable(int epoll_fd, uint64_t first_id, size_t max_connections,
                  size_t max_connections_per_peer, size_t max_buffered_body_bytes)
      : epoll_fd_(epoll_fd),
        next_id_(first_id),
        max_connections_(max_connections),
        max_connections_per_peer_(max_connections_per_peer),
        max_buffered_body_bytes_(max_buffered_body_bytes) {}
  ~ConnectionTable();  // closes every connection's socket
  ConnectionTable(const ConnectionTable&) = delete;
  ConnectionTable& operator=(const ConnectionTable&) = delete;

  // Takes the accepted socket `fd` from `peer` (a PeerKey), with its TLS session `ssl` (owned from
  // here; null for plaintext), as a new connection reading its head
  // (epoll: EPOLLIN | EPOLLRDHUP), or closes it: when `peer` has max_connections_per_peer open
  // already, when max_connections are open and none can be evicted, or when epoll refuses it.
  void Admit(int fd, std::string peer, std::string peer_ip, int peer_port, SSL* ssl);

  // Changes the epoll interest of `c` without changing its phase; false: closed.
  bool SetInterest(Connection& c, uint32_t events);

  // Reserves `bytes` of the body budget for `c` until it closes; false when they do not fit.
  bool ReserveBody(Connection& c, size_t bytes);

  // The connection `id`; nullptr once it is closed.
  Connection* Find(uint64_t id);

  // The connection that entered `phase` first (the first to time out); nullptr if none.
  Connection* Oldest(Phase phase) const {
    return phases_[phase].empty() ? nullptr : phases_[phase].front();
  }

  // Moves `c` to `phase` (now) with epoll interest `events`; false: epoll refused, `c` is closed.
  bool SetPhase(Connection& c, Phase phase, uint32_t events);

  // Closes the socket (resetting it while writing) and destroys `c`.
  void Close(Connection& c);

  // Drops the connection that matters least: the oldest still reading its head, else the oldest
  // reading a body, the oldest lingering, the oldest writing. Requests being handled are never
  // dropped. False if none.
  bool EvictOldest();

 private:
  const int epoll_fd_;
  uint64_t next_id_;
  const size_t max_connections_;
  const size_t max_connections_per_peer_;
  const size_t max_buffered_body_bytes_;
  size_t buffered_body_bytes_ = 0;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>> connections_;
  absl::flat_hash_map<std::string, size_t> per_peer_;
  // Connections by phase, each list in the order they entered that phase: the front of a list is
  // the oldest and the first to time out.
  std::array<std::list<Connection*>, kPhases> phases_;
};

}  // namespace cropshield::http::internal

#endif  // CROPSHIELD_SERVER_HTTP_HTTP_CONNECTION_TABLE_H_
