// Internal to HttpServer: the listen socket, peer keys and the descriptor limit.
//
// Thread-safety: every function is reentrant.
#ifndef CROPSHIELD_SERVER_HTTP_HTTP_SOCKET_H_
#define CROPSHIELD_SERVER_HTTP_HTTP_SOCKET_H_

#include <sys/socket.h>

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cropshield::http::internal {

// Closes `fd` unless it is negative.
void CloseFd(int fd);

struct ListeningSocket {
  int fd = -1;   // non-blocking, close-on-exec, listening with SO_REUSEADDR
  int port = 0;  // the port actually bound (0 if getsockname failed)
};

// Binds and listens on `address` ("host:port", "[v6addr]:port" or ":port" for every address; port
// 0 picks a free one), trying each address the host resolves to in turn. A malformed or
// unresolvable address is INVALID_ARGUMENT; no address to listen on (e.g. in use) UNAVAILABLE.
absl::StatusOr<ListeningSocket> ListenOn(absl::string_view address);

// The key of the per-peer limit: the peer's IP address bytes (IPv4-mapped IPv6 as IPv4).
std::string PeerKey(const sockaddr_storage& peer);

// The peer's printable address ("127.0.0.1", "::1"; IPv4-mapped IPv6 as IPv4) and port.
void PeerAddress(const sockaddr_storage& peer, std::string* ip, int* port);

// `wanted`, at most half of the soft descriptor limit (at least 1): the rest of the process
// (gRPC, model files) needs descriptors too.
size_t ClampToDescriptorLimit(size_t wanted);

}  // namespace cropshield::http::internal

#endif  // CROPSHIELD_SERVER_HTTP_HTTP_SOCKET_H_
