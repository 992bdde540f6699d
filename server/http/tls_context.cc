#include "server/http/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"

namespace cropshield::http {
namespace {

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

// The PEM objects in `pem`, read through a memory BIO.
struct MemoryBio {
  explicit MemoryBio(const std::string& pem)
      : bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()))) {}
  ~MemoryBio() { BIO_free(bio); }
  BIO* bio;
};

absl::Status LoadChain(SSL_CTX* ctx, const std::string& pem) {
  MemoryBio in(pem);
  X509* leaf = PEM_read_bio_X509(in.bio, nullptr, nullptr, nullptr);
  if (leaf == nullptr || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    X509_free(leaf);
    return absl::InvalidArgumentError(absl::StrCat("TLS certificate: ", OpenSslError()));
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(in.bio, nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {  // takes `extra` on success
      X509_free(extra);
      return absl::InvalidArgumentError(absl::StrCat("TLS chain: ", OpenSslError()));
    }
  }
  ERR_clear_error();  // the end of the PEM data reads as an error
  return absl::OkStatus();
}

absl::Status LoadKey(SSL_CTX* ctx, const std::string& pem) {
  MemoryBio in(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in.bio, nullptr, nullptr, nullptr);
  const bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
                  SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(key);
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("TLS key: ", OpenSslError()));
  return absl::OkStatus();
}

absl::Status LoadClientCa(SSL_CTX* ctx, const std::string& pem) {
  MemoryBio in(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int loaded = 0;
  while (X509* ca = PEM_read_bio_X509(in.bio, nullptr, nullptr, nullptr)) {
    loaded += X509_STORE_add_cert(store, ca) == 1 ? 1 : 0;
    X509_free(ca);
  }
  ERR_clear_error();
  if (loaded == 0) return absl::InvalidArgumentError("TLS client CA: no certificate in the PEM");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return absl::OkStatus();
}

absl::Status Configure(SSL_CTX* ctx, const TlsOptions& options) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (absl::Status chain = LoadChain(ctx, options.cert_pem); !chain.ok()) return chain;
  if (absl::Status key = LoadKey(ctx, options.key_pem); !key.ok()) return key;
  if (options.client_ca_pem.empty()) return absl::OkStatus();
  return LoadClientCa(ctx, options.client_ca_pem);
}

}  // namespace

absl::StatusOr<std::shared_ptr<TlsContext>> TlsContext::Create(const TlsOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError(absl::StrCat("TLS: ", OpenSslError()));
  std::shared_ptr<TlsContext> context(new TlsContext(ctx));
  if (absl::Status configured = Configure(ctx, options); !configured.ok()) return configured;
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

SSL* TlsContext::NewSession(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (ssl != nullptr && SSL_set_fd(ssl, fd) == 1) {
    SSL_set_accept_state(ssl);
    return ssl;
  }
  SSL_free(ssl);
  return nullptr;
}

std::vector<std::string> TlsContext::PeerIdentities(SSL* ssl) {
  std::vector<std::string> identities;
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (peer == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) {
    X509_free(peer);
    return identities;
  }
  char common_name[256] = "";
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, common_name,
                                sizeof(common_name)) > 0) {
    identities.emplace_back(common_name);
  }
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS || name->type == GEN_URI) {
      const ASN1_IA5STRING* text =
          name->type == GEN_DNS ? name->d.dNSName : name->d.uniformResourceIdentifier;
      identities.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                              static_cast<size_t>(ASN1_STRING_length(text)));
    }
  }
  GENERAL_NAMES_free(names);
  X509_free(peer);
  return identities;
}

}  // namespace cropshield::http
