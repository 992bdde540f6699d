// Authorisation of admin RPCs (ClearCache, ReloadModel and later mutating RPCs).
//
// Thread-safety: pure functions.
#ifndef CROPSHIELD_SERVER_CORE_ADMIN_AUTH_H_
#define CROPSHIELD_SERVER_CORE_ADMIN_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace cropshield::core {

struct AdminPolicy {
  // Token admin calls may present as "authorization: Bearer <token>"; empty: no token admits.
  std::string token;
  // Admit loopback peers without credentials (--admin_trust_loopback). Off by default: behind a
  // service-mesh sidecar or `kubectl port-forward` every caller is loopback.
  bool trust_loopback = false;
  // Client certificate identities (subject common name or a subject alternative name) admitted
  // over mutual TLS; empty: no identity admits.
  std::vector<std::string> client_identities;
};

// Admits an admin call when its bearer token matches `policy.token` (compared in constant time),
// when one of `verified_identities` (from a client certificate the TLS layer verified) is on
// `policy.client_identities`, or when `policy.trust_loopback` is set and the peer is loopback.
// With none of the three configured every admin call is refused. `authorization` is the call's
// "authorization" metadata (empty when absent); `peer` is grpc's peer string
// ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555", "unix:..."). PERMISSION_DENIED otherwise, with a
// message that never echoes the token.
absl::Status AuthorizeAdmin(const AdminPolicy& policy, absl::string_view authorization,
                            absl::string_view peer,
                            absl::Span<const std::string> verified_identities = {});

bool IsLoopbackPeer(absl::string_view peer);

// `text` with every whitespace-separated word that holds a '/' replaced by "<path>": error texts
// shown to callers who are not admins (file system layout stays private).
std::string RedactPaths(absl::string_view text);

// True when the policy admits anyone at all.
bool AdminEnabled(const AdminPolicy& policy);

// "token", "token+mtls-identities+loopback", ... or "disabled", for the start-up log line.
std::string DescribeAdminPolicy(const AdminPolicy& policy);

// The admin token from the first line of `token_file` (trailing whitespace removed) or, when
// `token_file` is empty, from `env_value` (CROPSHIELD_ADMIN_TOKEN; nullptr when unset). An empty
// result with neither configured is OK. A configured source that cannot be read (NOT_FOUND) or
// holds an empty or whitespace-only token (INVALID_ARGUMENT) is an error, so that a misnamed or
// empty Secret cannot silently turn token checks off.
absl::StatusOr<std::string> ReadAdminToken(const std::string& token_file, const char* env_value);

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_ADMIN_AUTH_H_
