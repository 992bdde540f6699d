#include "server/service/admin_auth.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace cropshield::service {
namespace {

// Compares without an early exit so the time taken does not reveal how much of a guess matched.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

}  // namespace

bool IsLoopbackPeer(absl::string_view peer) {
  return absl::StartsWith(peer, "ipv4:127.") || absl::StartsWith(peer, "ipv6:[::1]") ||
         absl::StartsWith(peer, "ipv6:%5B::1%5D") || absl::StartsWith(peer, "ipv6:[::ffff:127.") ||
         absl::StartsWith(peer, "unix:");
}

absl::Status AuthorizeAdmin(const AdminPolicy& policy, absl::string_view authorization,
                            absl::string_view peer,
                            absl::Span<const std::string> verified_identities) {
  if (policy.token.empty() && policy.client_identities.empty()) {
    if (IsLoopbackPeer(peer)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "admin RPCs are accepted only from loopback when the server has no admin token "
        "(--admin_token_file or CROPSHIELD_ADMIN_TOKEN) and no --admin_client_identities");
  }
  for (const std::string& identity : verified_identities) {
    if (std::find(policy.client_identities.begin(), policy.client_identities.end(), identity) !=
        policy.client_identities.end()) {
      return absl::OkStatus();
    }
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (policy.token.empty()) {
    return absl::PermissionDeniedError(
        "admin RPC needs a client certificate whose identity is on --admin_client_identities");
  }
  if (!absl::StartsWith(authorization, kBearer)) {
    return absl::PermissionDeniedError(
        policy.client_identities.empty()
            ? "admin RPC needs 'authorization: Bearer <admin token>' metadata"
            : "admin RPC needs 'authorization: Bearer <admin token>' metadata or an allowed "
              "client certificate");
  }
  if (!ConstantTimeEquals(authorization.substr(kBearer.size()), policy.token)) {
    return absl::PermissionDeniedError("admin token is not valid");
  }
  return absl::OkStatus();
}

}  // namespace cropshield::service
