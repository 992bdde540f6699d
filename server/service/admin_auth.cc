#include "server/service/admin_auth.h"

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

absl::Status AuthorizeAdmin(absl::string_view configured_token, absl::string_view authorization,
                            absl::string_view peer) {
  if (configured_token.empty()) {
    if (IsLoopbackPeer(peer)) return absl::OkStatus();
    return absl::PermissionDeniedError(
        "admin RPCs are accepted only from loopback when the server has no admin token "
        "(--admin_token_file or CROPSHIELD_ADMIN_TOKEN)");
  }
  constexpr absl::string_view kBearer = "Bearer ";
  if (!absl::StartsWith(authorization, kBearer)) {
    return absl::PermissionDeniedError(
        "admin RPC needs 'authorization: Bearer <admin token>' metadata");
  }
  if (!ConstantTimeEquals(authorization.substr(kBearer.size()), configured_token)) {
    return absl::PermissionDeniedError("admin token is not valid");
  }
  return absl::OkStatus();
}

}  // namespace cropshield::service
