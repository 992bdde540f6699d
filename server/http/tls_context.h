// TLS for HttpServer (OpenSSL): the server's certificate and key, optionally a client CA whose
// signature clients must present (mutual TLS), and non-blocking sessions on accepted sockets.
// TLS 1.2 or newer, no renegotiation.
//
// Thread-safety: Create from any thread; NewSession and PeerIdentities from the loop thread (the
// SSL_CTX is shared read-only by the sessions).
#ifndef CROPSHIELD_SERVER_HTTP_TLS_CONTEXT_H_
#define CROPSHIELD_SERVER_HTTP_TLS_CONTEXT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace cropshield::http {

struct TlsOptions {
  std::string cert_pem;       // certificate chain, PEM contents
  std::string key_pem;        // private key, PEM contents
  std::string client_ca_pem;  // when set, clients must present a certificate it signed
};

class TlsContext {
 public:
  // INVALID_ARGUMENT naming what OpenSSL refused (unparsable PEM, key not matching).
  static absl::StatusOr<std::shared_ptr<TlsContext>> Create(const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A server session on the non-blocking socket `fd` (not owned); nullptr on failure.
  SSL* NewSession(int fd) const;

  // The verified client certificate's common name and DNS/URI subject alternative names; empty
  // without a verified certificate.
  static std::vector<std::string> PeerIdentities(SSL* ssl);

 private:
  explicit TlsContext(SSL_CTX* ctx) : ctx_(ctx) {}
  SSL_CTX* const ctx_;
};

}  // namespace cropshield::http

#endif  // CROPSHIELD_SERVER_HTTP_TLS_CONTEXT_H_
