#include "client/cli/command_support.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <utility>

#include "client/cli/hints.h"
#include "client/cli/models.h"

namespace cropshield::cli {

using client::Client;

int Fail(absl::string_view what, const absl::Status& status) {
  std::cerr << "error: " << what << ": " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return kExitFailed;
}

void PrintAdminTokenHint(const absl::Status& refusal, const ConnectionFlags& flags) {
  const std::string hint = AdminTokenHint(refusal, !AdminToken(flags).empty());
  if (!hint.empty()) std::cerr << hint << "\n";
}

int FailAdmin(absl::string_view what, const absl::Status& status, const ConnectionFlags& flags) {
  Fail(what, status);
  PrintAdminTokenHint(status, flags);
  return kExitFailed;
}

int Usage(absl::string_view command, absl::string_view message) {
  std::cerr << command << ": " << message << "\nRun with --help for more information.\n";
  return kExitUsage;
}

std::string AdminToken(const ConnectionFlags& flags) {
  if (!flags.token.empty()) return flags.token;
  const char* env = std::getenv("CROPSHIELD_ADMIN_TOKEN");
  return env == nullptr ? "" : env;
}

absl::StatusOr<std::unique_ptr<Client>> MakeClient(const ConnectionFlags& flags,
                                                   const ClientSpec& spec) {
  client::Options options;
  if (spec.connection > 0) options.int_channel_args[GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL] = 1;
  options.target = spec.target.empty() ? flags.target : spec.target;
  options.lb_policy = flags.lb_policy;
  options.default_timeout = std::max(absl::Milliseconds(flags.deadline_ms), spec.min_timeout);
  options.retry.max_attempts = flags.max_attempts;
  options.tls.root_ca_file = flags.tls_ca;
  options.tls.cert_chain_file = flags.tls_cert;
  options.tls.private_key_file = flags.tls_key;
  options.tls.server_name_override =
      flags.tls_server_name.empty() ? spec.tls_name : flags.tls_server_name;
  options.tls.enabled = flags.tls || !flags.tls_ca.empty() || !flags.tls_cert.empty();
  if (spec.access == Access::kAdmin) options.admin_token = AdminToken(flags);
  options.allow_plaintext_token = flags.allow_plaintext_token;
  return Client::Create(std::move(options));
}

absl::Status CheckModelServed(const Client& client, const v1::ModelSpec& spec) {
  if (!IsSet(spec)) return absl::OkStatus();
  absl::StatusOr<v1::StatsResponse> stats = client.Stats();
  if (!stats.ok()) return stats.status();
  return FindModel(*stats, spec).status();
}

}  // namespace cropshield::cli
