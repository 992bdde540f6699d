#include "client/cli/replicas.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cropshield::cli {
namespace {

struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};

// "host:port" or "[v6]:port".
absl::StatusOr<HostPort> SplitHostPort(absl::string_view address) {
  HostPort out;
  absl::string_view port;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || address.substr(close + 1, 1) != ":") {
      return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not [address]:port"));
    }
    out.host = std::string(address.substr(1, close - 1));
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos || address.find(':') != colon) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", address, "' is not host:port (--all-replicas needs the port)"));
    }
    out.host = std::string(address.substr(0, colon));
    port = address.substr(colon + 1);
  }
  if (out.host.empty() || !absl::SimpleAtoi(port, &out.port) || out.port <= 0 || out.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' is not host:port"));
  }
  return out;
}

std::string PrintedAddress(absl::string_view ip, int port) {
  return absl::StrContains(ip, ':') ? absl::StrCat("[", ip, "]:", port)
                                    : absl::StrCat(ip, ":", port);
}

void AddUnique(const std::string& ip, int port, std::vector<Replica>* replicas) {
  Replica replica{PrintedAddress(ip, port), TargetOfAddress(ip, port)};
  for (const Replica& r : *replicas) {
    if (r.target == replica.target) return;
  }
  replicas->push_back(std::move(replica));
}

absl::StatusOr<std::vector<Replica>> ResolveWithGetaddrinfo(const HostPort& hp) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* results = nullptr;
  const int rc = getaddrinfo(hp.host.c_str(), nullptr, &hints, &results);
  if (rc != 0) {
    return absl::NotFoundError(absl::StrCat("cannot resolve '", hp.host, "': ", gai_strerror(rc)));
  }
  std::vector<Replica> replicas;
  for (const addrinfo* ai = results; ai != nullptr; ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN] = {};
    if (ai->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr, ip,
                sizeof(ip));
    } else if (ai->ai_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr, ip,
                sizeof(ip));
    } else {
      continue;
    }
    AddUnique(ip, hp.port, &replicas);
  }
  freeaddrinfo(results);
  return replicas;
}

// The addresses of `type` (ns_t_a or ns_t_aaaa) records for `host` from `state`'s server.
void QueryRecords(res_state state, const std::string& host, int type, int port,
                  std::vector<Replica>* replicas) {
  unsigned char answer[4096];
  const int length = res_nquery(state, host.c_str(), ns_c_in, type, answer, sizeof(answer));
  if (length <= 0) return;  // no such name, no records of this type, or no answer
  ns_msg message;
  if (ns_initparse(answer, length, &message) != 0) return;
  for (int i = 0; i < ns_msg_count(message, ns_s_an); ++i) {
    ns_rr record;
    if (ns_parserr(&message, ns_s_an, i, &record) != 0 || ns_rr_type(record) != type) continue;
    char ip[INET6_ADDRSTRLEN] = {};
    const int family = type == ns_t_a ? AF_INET : AF_INET6;
    if (ns_rr_rdlen(record) != (type == ns_t_a ? 4 : 16)) continue;
    if (inet_ntop(family, ns_rr_rdata(record), ip, sizeof(ip)) == nullptr) continue;
    AddUnique(ip, port, replicas);
  }
}

// dns://SERVER/host:port: asks SERVER (an IPv4 address, port 53 unless given) as gRPC would.
absl::StatusOr<std::vector<Replica>> ResolveWithServer(absl::string_view server,
                                                       const HostPort& hp) {
  std::string server_ip(server);
  int server_port = 53;
  if (absl::StrContains(server, ':')) {
    absl::StatusOr<HostPort> parsed = SplitHostPort(server);
    if (!parsed.ok()) return parsed.status();
    server_ip = parsed->host;
    server_port = parsed->port;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(server_port));
  if (inet_pton(AF_INET, server_ip.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DNS server '", server, "' of the target: --all-replicas takes an IPv4 address there"));
  }
  struct __res_state state;
  std::memset(&state, 0, sizeof(state));
  if (res_ninit(&state) != 0) return absl::InternalError("res_ninit failed");
  state.nscount = 1;
  state.nsaddr_list[0] = address;
  state.retrans = 1;
  state.retry = 2;
  std::vector<Replica> replicas;
  QueryRecords(&state, hp.host, ns_t_a, hp.port, &replicas);
  QueryRecords(&state, hp.host, ns_t_aaaa, hp.port, &replicas);
  res_nclose(&state);
  return replicas;
}

}  // namespace

std::string TargetOfAddress(absl::string_view ip, int port) {
  return absl::StrContains(ip, ':') ? absl::StrCat("ipv6:[", ip, "]:", port)
                                    : absl::StrCat("ipv4:", ip, ":", port);
}

absl::StatusOr<std::vector<Replica>> ResolveReplicas(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) {
    return std::vector<Replica>{{std::string(target), std::string(target)}};
  }
  absl::string_view rest = target;
  std::vector<Replica> replicas;
  if (absl::ConsumePrefix(&rest, "ipv4:") || absl::ConsumePrefix(&rest, "ipv6:")) {
    for (absl::string_view address : absl::StrSplit(rest, ',')) {
      absl::StatusOr<HostPort> hp = SplitHostPort(address);
      if (!hp.ok()) return hp.status();
      AddUnique(hp->host, hp->port, &replicas);
    }
    return replicas;
  }
  std::string server;
  if (absl::ConsumePrefix(&rest, "dns:")) {
    if (absl::ConsumePrefix(&rest, "//")) {
      const size_t slash = rest.find('/');
      if (slash == absl::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrCat("cannot parse target '", target, "'"));
      }
      server = std::string(rest.substr(0, slash));
      rest = rest.substr(slash + 1);
    }
  } else if (absl::StrContains(rest, "://") || absl::StrContains(rest, ":///")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--all-replicas: unsupported target scheme in '", target, "'"));
  }
  absl::StatusOr<HostPort> hp = SplitHostPort(rest);
  if (!hp.ok()) return hp.status();
  absl::StatusOr<std::vector<Replica>> resolved =
      server.empty() ? ResolveWithGetaddrinfo(*hp) : ResolveWithServer(server, *hp);
  if (!resolved.ok()) return resolved.status();
  if (resolved->empty()) {
    return absl::NotFoundError(absl::StrCat("'", hp->host, "' resolves to no address"));
  }
  in_addr v4;
  in6_addr v6;
  const bool literal = inet_pton(AF_INET, hp->host.c_str(), &v4) == 1 ||
                       inet_pton(AF_INET6, hp->host.c_str(), &v6) == 1;
  if (!literal) {
    for (Replica& replica : *resolved) replica.host = hp->host;
  }
  return resolved;
}

}  // namespace cropshield::cli
