#include "server/core/admin_auth.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cropshield::core {
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

std::string RedactPaths(absl::string_view text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = start;
    while (end < text.size() && !absl::ascii_isspace(static_cast<unsigned char>(text[end]))) ++end;
    const absl::string_view word = text.substr(start, end - start);
    absl::StrAppend(&out, word.find('/') == absl::string_view::npos ? word : "<path>");
    while (end < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[end]))) {
      out.push_back(text[end++]);
    }
    start = end;
  }
  return out;
}

bool AdminEnabled(const AdminPolicy& policy) {
  return !policy.token.empty() || !policy.client_identities.empty() || policy.trust_loopback;
}

std::string DescribeAdminPolicy(const AdminPolicy& policy) {
  std::vector<std::string> parts;
  if (!policy.token.empty()) parts.push_back("token");
  if (!policy.client_identities.empty()) parts.push_back("mtls-identities");
  if (policy.trust_loopback) parts.push_back("loopback");
  return parts.empty() ? "disabled" : absl::StrJoin(parts, "+");
}

absl::StatusOr<std::string> ReadAdminToken(const std::string& token_file, const char* env_value) {
  std::string token;
  std::string source;
  if (!token_file.empty()) {
    std::ifstream in(token_file);
    if (!in)
      return absl::NotFoundError(absl::StrCat("--admin_token_file: cannot open ", token_file));
    std::getline(in, token);
    source = absl::StrCat("--admin_token_file ", token_file);
  } else if (env_value != nullptr) {
    token = env_value;
    source = "CROPSHIELD_ADMIN_TOKEN";
  } else {
    return std::string();
  }
  absl::StripTrailingAsciiWhitespace(&token);
  if (token.empty() || absl::StripLeadingAsciiWhitespace(token).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     " holds an empty admin token; refusing to start (unset it to disable token "
                     "admission)"));
  }
  return token;
}

absl::Status AuthorizeAdmin(const AdminPolicy& policy, absl::string_view authorization,
                            absl::string_view peer,
                            absl::Span<const std::string> verified_identities) {
  if (policy.trust_loopback && IsLoopbackPeer(peer)) return absl::OkStatus();
  if (!AdminEnabled(policy)) {
    return absl::PermissionDeniedError(
        "admin RPCs are disabled on this server: start it with --admin_token_file (or "
        "CROPSHIELD_ADMIN_TOKEN), --admin_client_identities or --admin_trust_loopback");
  }
  if (policy.token.empty() && policy.client_identities.empty()) {
    return absl::PermissionDeniedError(
        "admin RPCs are accepted only from loopback peers (--admin_trust_loopback)");
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

}  // namespace cropshield::core
