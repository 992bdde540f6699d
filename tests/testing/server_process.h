// Runs the real cropshield-server binary as a child process for integration tests: binds port 0,
// reads the chosen port from its log, waits for SERVING on grpc.health.v1.
//
// Thread-safety: one test thread owns a ServerProcess.
#ifndef CROPSHIELD_TESTS_TESTING_SERVER_PROCESS_H_
#define CROPSHIELD_TESTS_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace cropshield::testing {

class ServerProcess {
 public:
  // Starts `binary` with `args` plus --address=`address` (default 127.0.0.1:0: a free port);
  // stderr goes to a log file. Returns once the server has logged its port (it may not be SERVING
  // yet).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(
      const std::string& binary, std::vector<std::string> args,
      const std::string& address = "127.0.0.1:0");
  ~ServerProcess();  // kills the server if it still runs

  int port() const { return port_; }
  // host:port to connect to (the host of the listen address, 127.0.0.1 by default).
  std::string address() const { return host_ + ":" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  std::string Log() const;

  // grpc.health.v1 status for the whole server; an error status when the call fails.
  absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> Health() const;
  absl::Status WaitServing(std::chrono::seconds timeout) const;

  // Sends `signal` and waits for exit; returns the exit code (or 128 + signal if killed).
  absl::StatusOr<int> StopWith(int signal, std::chrono::seconds timeout);
  // Waits for the server to exit by itself (e.g. after a signal sent with kill(pid(), ...)).
  absl::StatusOr<int> WaitExit(std::chrono::seconds timeout);
  // The /metrics text of a server started with --metrics_address=127.0.0.1:0 (port from the
  // log); empty when the endpoint is off or does not answer.
  std::string MetricsText() const;
  // The value of one unlabelled series (e.g. "cropshield_idle_memory_releases_total") in
  // MetricsText(); -1 when it is not there.
  double MetricValue(const std::string& series) const;
  // Polls MetricValue(series) until it exceeds `value`; false after `timeout`.
  bool WaitForMetricAbove(const std::string& series, double value,
                          std::chrono::seconds timeout) const;
  // Waits until the log contains `text`.
  absl::Status WaitForLog(const std::string& text, std::chrono::seconds timeout) const;

 private:
  ServerProcess() = default;

  pid_t pid_ = -1;
  int port_ = 0;
  std::string host_ = "127.0.0.1";
  std::string log_path_;
};

// Runs a shell command; returns its exit code and stdout (stderr too when merge_stderr).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command, bool merge_stderr = false);

std::string ReadFileOrDie(const std::string& path);

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_TESTING_SERVER_PROCESS_H_
