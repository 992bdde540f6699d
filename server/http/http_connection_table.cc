#include "server/http/http_connection_table.h"

#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "server/http/http_socket.h"

namespace cropshield::http::internal {

ConnectionTable::~ConnectionTable() {
  for (auto& [id, c] : connections_) {
    SSL_free(c->ssl);
    CloseFd(c->fd);
  }
}

void ConnectionTable::Admit(int fd, std::string peer, std::string peer_ip, int peer_port,
                            SSL* ssl) {
  auto counted = per_peer_.find(peer);
  const size_t from_peer = counted == per_peer_.end() ? 0 : counted->second;
  if (from_peer >= max_connections_per_peer_ ||
      (connections_.size() >= max_connections_ && !EvictOldest())) {
    SSL_free(ssl);
    close(fd);
    return;
  }
  auto owned = std::make_unique<Connection>();
  Connection& c = *owned;
  c.id = next_id_++;
  c.fd = fd;
  c.events = EPOLLIN | EPOLLRDHUP;
  epoll_event event{};
  event.events = c.events;
  event.data.u64 = c.id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    SSL_free(ssl);
    close(fd);
    return;
  }
  c.ssl = ssl;
  ++per_peer_[peer];
  c.peer = std::move(peer);
  c.peer_ip = std::move(peer_ip);
  c.peer_port = peer_port;
  c.since = Clock::now();
  c.position = phases_[kReading].insert(phases_[kReading].end(), &c);
  connections_.emplace(c.id, std::move(owned));
}

bool ConnectionTable::ReserveBody(Connection& c, size_t bytes) {
  if (bytes > max_buffered_body_bytes_ - buffered_body_bytes_) return false;
  buffered_body_bytes_ += bytes;
  c.reserved_body_bytes += bytes;
  return true;
}

Connection* ConnectionTable::Find(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

bool ConnectionTable::SetPhase(Connection& c, Phase phase, uint32_t events) {
  phases_[c.phase].erase(c.position);
  c.phase = phase;
  c.since = Clock::now();
  c.position = phases_[phase].insert(phases_[phase].end(), &c);
  return SetInterest(c, events);
}

bool ConnectionTable::SetInterest(Connection& c, uint32_t events) {
  if (events == c.events) return true;
  c.events = events;
  epoll_event event{};
  event.events = events;
  event.data.u64 = c.id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &event) == 0) return true;
  Close(c);
  return false;
}

void ConnectionTable::Close(Connection& c) {
  phases_[c.phase].erase(c.position);
  if (auto counted = per_peer_.find(c.peer); counted != per_peer_.end() && --counted->second == 0) {
    per_peer_.erase(counted);
  }
  if (c.phase == kWriting) {
    // Unsent response bytes would keep the kernel sending to a reader that does not read:
    // reset instead, which frees the socket buffers at once.
    const linger abort{1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort));
  }
  buffered_body_bytes_ -= c.reserved_body_bytes;
  SSL_free(c.ssl);
  close(c.fd);               // also removes it from the epoll set
  connections_.erase(c.id);  // destroys c
}

bool ConnectionTable::EvictOldest() {
  for (Phase phase : {kReading, kReadingBody, kLingering, kWriting}) {
    if (Connection* oldest = Oldest(phase); oldest != nullptr) {
      Close(*oldest);
      return true;
    }
  }
  return false;
}

}  // namespace cropshield::http::internal
