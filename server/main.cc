// cropshield-server: loads a model package, warms it up, then serves Predict over gRPC.
// The flags live in server/app/options_from_flags.cc, the lifecycle in server/app/serve.cc.
#include <signal.h>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/statusor.h"
#include "common/log.h"
#include "server/app/options_from_flags.h"
#include "server/app/serve.h"

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "CropShield Serve: gRPC crop leaf disease classification.\n"
      "Usage: cropshield-server [--model DIR] [--address HOST:PORT] [flags]\n"
      "Run with --helpfull for every flag.");
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = cropshield::app::IsServerFlagsFile;
  usage.contains_help_flags = usage.contains_helpshort_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  // Before any thread starts: every thread inherits the blocked stop signals; Serve takes them.
  const sigset_t stop_signals = cropshield::app::BlockStopSignals();
  absl::StatusOr<cropshield::app::ServeOptions> options = cropshield::app::OptionsFromFlags();
  if (!options.ok()) {
    CS_LOG_ERROR("cannot start: ", options.status().ToString());
    return 1;
  }
  return cropshield::app::Serve(*options, stop_signals);
}
