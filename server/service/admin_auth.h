// Authorisation of admin RPCs (ClearCache and later mutating RPCs).
//
// Thread-safety: pure function.
#ifndef CROPSHIELD_SERVER_SERVICE_ADMIN_AUTH_H_
#define CROPSHIELD_SERVER_SERVICE_ADMIN_AUTH_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cropshield::service {

// `authorization` is the value of the call's "authorization" metadata (empty when absent), `peer`
// is grpc's peer string ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555", "unix:..."). With a configured
// token the call must carry "Bearer <token>" (compared in constant time); without one, only
// loopback peers are admitted. PERMISSION_DENIED otherwise; the token is never echoed.
absl::Status AuthorizeAdmin(absl::string_view configured_token, absl::string_view authorization,
                            absl::string_view peer);

bool IsLoopbackPeer(absl::string_view peer);

}  // namespace cropshield::service

#endif  // CROPSHIELD_SERVER_SERVICE_ADMIN_AUTH_H_
