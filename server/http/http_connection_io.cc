#include "server/http/http_connection_io.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "server/http/tls_context.h"

namespace cropshield::http::internal {
namespace {

// recv/send's answer for a TLS call that returned `result` <= 0.
ssize_t TlsFailure(SSL* ssl, int result) {
  const int error = SSL_get_error(ssl, result);
  ERR_clear_error();
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (error == SSL_ERROR_ZERO_RETURN || (error == SSL_ERROR_SYSCALL && errno == 0)) return 0;
  errno = EIO;
  return -1;
}

}  // namespace

ssize_t ReadSome(Connection& c, char* buffer, size_t size) {
  if (c.ssl == nullptr) return recv(c.fd, buffer, size, 0);
  ERR_clear_error();
  const int n = SSL_read(c.ssl, buffer, static_cast<int>(size));
  return n > 0 ? n : TlsFailure(c.ssl, n);
}

ssize_t WriteSome(Connection& c, const char* data, size_t size) {
  if (c.ssl == nullptr) return send(c.fd, data, size, MSG_NOSIGNAL);
  ERR_clear_error();
  const int n = SSL_write(c.ssl, data, static_cast<int>(size));
  if (n > 0) return n;
  const ssize_t failed = TlsFailure(c.ssl, n);
  if (failed == 0) errno = EPIPE;  // a write cannot end cleanly
  return -1;
}

Handshake ContinueHandshake(Connection& c) {
  if (c.ssl == nullptr || c.handshake_done) return Handshake::kDone;
  ERR_clear_error();
  const int result = SSL_do_handshake(c.ssl);
  if (result == 1) {
    c.handshake_done = true;
    c.verified_identities = TlsContext::PeerIdentities(c.ssl);
    return Handshake::kDone;
  }
  const int error = SSL_get_error(c.ssl, result);
  ERR_clear_error();
  if (error == SSL_ERROR_WANT_READ) return Handshake::kWaitRead;
  if (error == SSL_ERROR_WANT_WRITE) return Handshake::kWaitWrite;
  return Handshake::kFailed;
}

void NotifyClose(Connection& c) {
  if (c.ssl == nullptr || !c.handshake_done) return;
  ERR_clear_error();
  SSL_shutdown(c.ssl);  // one attempt; the loop does not wait for the peer's close_notify
  ERR_clear_error();
}

}  // namespace cropshield::http::internal
