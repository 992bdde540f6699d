// Authorisation of admin RPCs (ClearCache, ReloadModel and later mutating RPCs).
//
// Thread-safety: pure functions.
#ifndef CROPSHIELD_SERVER_SERVICE_ADMIN_AUTH_H_
#define CROPSHIELD_SERVER_SERVICE_ADMIN_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace cropshield::service {

struct AdminPolicy {
  // Token admin calls may present as "authorization: Bearer <token>"; empty: no token admits.
  std::string token;
  // Client certificate identities (subject common name or a subject alternative name) admitted
  // over mutual TLS; empty: no identity admits.
  std::vector<std::string> client_identities;
};

// Admits an admin call when its bearer token matches `policy.token` (compared in constant time),
// or when one of `verified_identities` (from a client certificate the TLS layer verified) is on
// `policy.client_identities`. With neither a token nor identities configured, only loopback peers
// are admitted. `authorization` is the call's "authorization" metadata (empty when absent); `peer`
// is grpc's peer string ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555", "unix:..."). PERMISSION_DENIED
// otherwise, with a message that never echoes the token.
absl::Status AuthorizeAdmin(const AdminPolicy& policy, absl::string_view authorization,
                            absl::string_view peer,
                            absl::Span<const std::string> verified_identities = {});

bool IsLoopbackPeer(absl::string_view peer);

}  // namespace cropshield::service

#endif  // CROPSHIELD_SERVER_SERVICE_ADMIN_AUTH_H_
