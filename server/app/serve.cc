#include "server/app/serve.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/app/server.h"
#include "server/core/admin_auth.h"
#include "server/engine/model.h"

namespace cropshield::app {
namespace {

// Raises the soft open-file limit to the hard one: every client connection and metrics socket is a
// descriptor, and the metrics server caps its connections at half the limit (a soft limit of 1024
// would leave 512).
void RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const rlim_t before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    CS_LOG_INFO("open-file limit raised from ", before, " to ", limit.rlim_cur);
  }
}

void LogListening(CropShieldServer& server, const ServerOptions& options) {
  CS_LOG_INFO("listening on port ", server.port(), " (NOT_SERVING until the model is warm",
              options.tls_cert_pem.empty()        ? "; plaintext"
              : options.tls_client_ca_pem.empty() ? "; TLS"
                                                  : "; mutual TLS",
              ")");
  // After the gRPC line: tools that take the first "listening on port" match get the gRPC port.
  if (server.metrics_port() > 0) {
    CS_LOG_INFO("metrics listening on port ", server.metrics_port(),
                " (GET /metrics; --metrics_address=", options.metrics_address, ")");
  }
  if (server.http_port() > 0) {
    const bool https = !options.tls_cert_pem.empty() && !options.http_plaintext_with_tls;
    CS_LOG_INFO("http listening on port ", server.http_port(),
                " (REST /v1, Open Inference Protocol /v2, web page /; --http_address=",
                options.http.address, https ? "; TLS" : "; plaintext", ")");
  }
}

// Loads and warms the model, flips health to SERVING, starts the repository watch and logs the
// SERVING line (tests and tools parse it).
absl::Status StartServing(CropShieldServer& server, const ServeOptions& options) {
  CS_RETURN_IF_ERROR(server.model_manager()->LoadNow(options.model_version).status());
  CS_ASSIGN_OR_RETURN(auto served, server.models().Get(cropshield::v1::ModelSpec()));
  server.SetServing(true);
  server.model_manager()->StartWatching();
  const ServerOptions& s = options.server;
  CS_LOG_INFO("SERVING model=", served->name(), " version=", served->version(),
              " device=", served->device_name(), " precision=", served->precision(),
              " classes=", served->num_classes(), " address=", s.address, " port=", server.port(),
              " workers=", s.core.workers, " threads=", options.threads,
              " admin=", core::DescribeAdminPolicy(s.core.admin));
  return absl::OkStatus();
}

// Atomic: readers never see a partial file.
void WritePortFile(const std::string& port_file, int port) {
  if (port_file.empty()) return;
  const std::string tmp = port_file + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), port_file.c_str());
}

// Waits for a stop signal, serves on with health NOT_SERVING for the drain delay (a second signal
// cuts it short), then shuts down.
void AwaitStopAndDrain(CropShieldServer& server, const ServeOptions& options,
                       const sigset_t& stop_signals) {
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  const int drain_delay_ms = options.drain_delay_ms;
  CS_LOG_INFO("received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
              ": health NOT_SERVING, serving on for ", drain_delay_ms,
              " ms (--drain_delay_ms), then finishing accepted calls (up to ",
              options.shutdown_grace_ms, " ms) and exiting");
  server.SetServing(false);
  if (drain_delay_ms > 0) {
    const timespec delay = {drain_delay_ms / 1000, (drain_delay_ms % 1000) * 1000000L};
    if (sigtimedwait(&stop_signals, nullptr, &delay) > 0) {
      CS_LOG_INFO("second stop signal: ending the drain delay early");
    }
  }
  server.Shutdown(std::chrono::milliseconds(options.shutdown_grace_ms));
}

}  // namespace

sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

int Serve(const ServeOptions& options, const sigset_t& stop_signals) {
  RaiseOpenFileLimit();
  engine::ConfigureTorchRuntime(options.threads, options.malloc_arenas);
  absl::StatusOr<std::unique_ptr<CropShieldServer>> server =
      CropShieldServer::Start(options.server);
  if (!server.ok()) {
    CS_LOG_ERROR("cannot start: ", server.status().ToString());
    return 1;
  }
  LogListening(**server, options.server);
  if (absl::Status serving = StartServing(**server, options); !serving.ok()) {
    CS_LOG_ERROR("cannot load model: ", serving.ToString());
    return 1;
  }
  WritePortFile(options.port_file, (*server)->port());
  AwaitStopAndDrain(**server, options, stop_signals);
  CS_LOG_INFO("stopped");
  return 0;
}

}  // namespace cropshield::app
