// cropshield-server's lifecycle: start the server, load and warm the model, report SERVING, wait
// for SIGINT/SIGTERM, drain and shut down.
//
// Thread-safety: BlockStopSignals, then Serve, from main; BlockStopSignals before any thread
// starts, so that every thread inherits the blocked signals and only Serve's sigwait takes them.
#ifndef CROPSHIELD_SERVER_APP_SERVE_H_
#define CROPSHIELD_SERVER_APP_SERVE_H_

#include <signal.h>

#include "server/app/options_from_flags.h"

namespace cropshield::app {

// Blocks SIGINT and SIGTERM in the calling thread (and the threads it starts later); returns them.
sigset_t BlockStopSignals();

// Raises the open-file limit, configures the torch runtime, starts the server (logging "listening
// on port N ..." and "metrics listening on port N ..."), loads the model, reports SERVING (the
// "SERVING model=..." line, --port_file), then waits for one of `stop_signals` and drains: health
// NOT_SERVING for drain_delay_ms (a second signal ends it early), then shutdown with
// shutdown_grace_ms for accepted calls. Returns the process's exit code: 0 once stopped, 1 when
// the server cannot start or the model cannot be loaded (logged).
int Serve(const ServeOptions& options, const sigset_t& stop_signals);

}  // namespace cropshield::app

#endif  // CROPSHIELD_SERVER_APP_SERVE_H_
