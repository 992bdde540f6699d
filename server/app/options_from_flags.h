// cropshield-server's command-line flags (defined in options_from_flags.cc) turned into the
// server's options: every default, clamp and check of a flag value, and the files the flags name
// (admin token, TLS PEM), in one place. main parses the command line, then calls OptionsFromFlags.
//
// Thread-safety: call from main before threads start (reads the flags).
#ifndef CROPSHIELD_SERVER_APP_OPTIONS_FROM_FLAGS_H_
#define CROPSHIELD_SERVER_APP_OPTIONS_FROM_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/app/server.h"

namespace cropshield::app {

// What the defaults depend on besides the flags; DetectHost reads it from this machine.
struct HostFacts {
  int cores = 1;                          // CPU cores, at least 1
  bool cuda = false;                      // --device resolves to a CUDA device here
  const char* admin_token_env = nullptr;  // CROPSHIELD_ADMIN_TOKEN; nullptr when unset
};

// The cores (std::thread::hardware_concurrency), whether --device is CUDA, the environment.
HostFacts DetectHost();

// Everything cropshield-server runs with: the server's options and the process's lifecycle.
struct ServeOptions {
  ServerOptions server;
  int threads = 1;                // torch intra-op threads per forward (--threads, resolved)
  int malloc_arenas = 0;          // --malloc_arenas; 0: one per core
  int64_t model_version = 0;      // version loaded at start; 0: the highest
  std::string port_file;          // written once SERVING; empty: none
  int drain_delay_ms = 0;         // serve on with health NOT_SERVING after a stop signal
  int shutdown_grace_ms = 10000;  // then accepted calls may take this long to finish
};

// The flags' values, defaulted and clamped, with the files they name read. An error (message
// without the "cannot start: " prefix main logs) for an admin token file or TLS file that cannot be
// read or is invalid, and for --admin_client_identities without --tls_client_ca.
absl::StatusOr<ServeOptions> OptionsFromFlags(const HostFacts& host);
absl::StatusOr<ServeOptions> OptionsFromFlags();  // with DetectHost()

// Whether `file` (a flag's source file as --help sees it) holds cropshield-server's own flags,
// the ones --help lists.
bool IsServerFlagsFile(absl::string_view file);

}  // namespace cropshield::app

#endif  // CROPSHIELD_SERVER_APP_OPTIONS_FROM_FLAGS_H_
