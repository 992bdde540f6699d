// Internal to HttpServer: a connection's bytes in and out, through its TLS session when it has
// one, with recv/send's conventions so the loop treats both alike.
//
// Thread-safety: the loop thread only (as the connection).
#ifndef CROPSHIELD_SERVER_HTTP_HTTP_CONNECTION_IO_H_
#define CROPSHIELD_SERVER_HTTP_HTTP_CONNECTION_IO_H_

#include <sys/types.h>

#include <cstddef>

#include "server/http/http_connection_table.h"

namespace cropshield::http::internal {

// > 0: bytes read; 0: the peer closed; -1 with errno (EAGAIN: wait for the socket).
ssize_t ReadSome(Connection& c, char* buffer, size_t size);
// > 0: bytes written; -1 with errno (EAGAIN: wait for the socket).
ssize_t WriteSome(Connection& c, const char* data, size_t size);

enum class Handshake { kDone, kWaitRead, kWaitWrite, kFailed };
// Advances the TLS handshake of `c` (kDone at once without TLS or once finished; then the
// verified client identities are in c.verified_identities).
Handshake ContinueHandshake(Connection& c);

// Sends TLS close_notify (best effort) before the socket is half-closed.
void NotifyClose(Connection& c);

}  // namespace cropshield::http::internal

#endif  // CROPSHIELD_SERVER_HTTP_HTTP_CONNECTION_IO_H_
