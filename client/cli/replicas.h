// `clear-cache --all-replicas`: every server a gRPC target names, one target per address.
#ifndef CROPSHIELD_CLIENT_CLI_REPLICAS_H_
#define CROPSHIELD_CLIENT_CLI_REPLICAS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cropshield::cli {

struct Replica {
  std::string address;  // as printed: 10.0.0.1:50051, [fd00::1]:50051, unix:/path
  std::string target;   // gRPC target of that one server: ipv4:10.0.0.1:50051, ipv6:[..]:p, unix:..
  std::string host;     // the name it was resolved from (for TLS name checks); empty for literals
};

// The replicas behind `target`:
//   host:port, dns:///host:port, dns:host:port  every address getaddrinfo gives for host (A and
//                                               AAAA records, /etc/hosts), duplicates removed;
//   dns://A.B.C.D[:port]/host:port              the A and AAAA records that DNS server answers;
//   ipv4:a:p,b:p / ipv6:[a]:p,...               each listed address;
//   unix:path, unix-abstract:name               that one socket.
// Errors: INVALID_ARGUMENT for a target it cannot parse (no port, a DNS server that is not an
// IPv4 address, another scheme); NOT_FOUND when the name resolves to no address.
absl::StatusOr<std::vector<Replica>> ResolveReplicas(absl::string_view target);

// The gRPC target of one address: "ipv4:1.2.3.4:p" or "ipv6:[::1]:p".
std::string TargetOfAddress(absl::string_view ip, int port);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_REPLICAS_H_
