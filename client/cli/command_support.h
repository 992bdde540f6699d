// Shared by the command implementations (commands.cc, clear_cache_command.cc): error printing,
// the admin token, and the client library configured from the flags.
//
// Thread-safety: free functions without shared state (the CLI is single-threaded).
#ifndef CROPSHIELD_CLIENT_CLI_COMMAND_SUPPORT_H_
#define CROPSHIELD_CLIENT_CLI_COMMAND_SUPPORT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "client/cli/commands.h"
#include "cropshield/client/client.h"

namespace cropshield::cli {

// Prints "error: <what>: <code>: <message>" and returns kExitFailed.
int Fail(absl::string_view what, const absl::Status& status);
// Fail for an admin command: also prints how to pass the admin token when `status` is a refusal
// a token would answer.
int FailAdmin(absl::string_view what, const absl::Status& status, const ConnectionFlags& flags);
// Prints AdminTokenHint's hint for `refusal` (nothing when it has none).
void PrintAdminTokenHint(const absl::Status& refusal, const ConnectionFlags& flags);
// Prints the usage problem and returns kExitUsage.
int Usage(absl::string_view command, absl::string_view message);
// --token, else CROPSHIELD_ADMIN_TOKEN; empty without either.
std::string AdminToken(const ConnectionFlags& flags);

enum class Access { kPlain, kAdmin };

struct ClientSpec {
  absl::Duration min_timeout = absl::ZeroDuration();
  Access access = Access::kPlain;
  int connection = 0;    // > 0: a private subchannel pool, hence its own connections
  std::string target;    // replaces --target when set
  std::string tls_name;  // replaces an empty --tls_server_name when set
};

// The client library configured from the flags. Only admin commands carry the token, so that a
// token in the environment never blocks or leaks from other commands.
absl::StatusOr<std::unique_ptr<client::Client>> MakeClient(const ConnectionFlags& flags,
                                                           const ClientSpec& spec = {});

// For commands whose RPC has no ModelSpec: NOT_FOUND when the server does not serve the model the
// flags name (nothing to check when they name none).
absl::Status CheckModelServed(const client::Client& client, const v1::ModelSpec& spec);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_COMMAND_SUPPORT_H_
