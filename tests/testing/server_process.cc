#include "tests/testing/server_process.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace cropshield::testing {

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(const std::string& binary,
                                                                    std::vector<std::string> args,
                                                                    const std::string& address) {
  std::unique_ptr<ServerProcess> server(new ServerProcess());
  if (const size_t colon = address.rfind(':'); colon != std::string::npos && colon > 0) {
    server->host_ = address.substr(0, colon);
    if (server->host_ == "0.0.0.0") server->host_ = "127.0.0.1";
  }
  char log_template[] = "/tmp/cropshield_server_log_XXXXXX";
  int log_fd = mkstemp(log_template);
  if (log_fd < 0) return absl::InternalError("mkstemp failed");
  server->log_path_ = log_template;

  args.insert(args.begin(), binary);
  args.push_back("--address=" + address);
  // Free HTTP and metrics ports unless the test names them: the defaults (8000, 9464) would
  // collide across tests, and a port in use makes the server refuse to start.
  for (const char* flag : {"--http_address", "--metrics_address"}) {
    if (std::none_of(args.begin(), args.end(),
                     [flag](const std::string& arg) { return arg.rfind(flag, 0) == 0; })) {
      args.push_back(absl::StrCat(flag, "=127.0.0.1:0"));
    }
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(log_fd, STDERR_FILENO);
    dup2(log_fd, STDOUT_FILENO);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd);
  server->pid_ = pid;

  const std::regex port_line("listening on port ([0-9]+)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch match;
    std::string log = server->Log();
    if (std::regex_search(log, match, port_line)) {
      server->port_ = std::stoi(match[1]);
      return server;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      server->pid_ = -1;
      return absl::InternalError(absl::StrCat("server exited early; log:\n", log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("server never logged its port; log:\n", server->Log()));
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (!log_path_.empty()) std::remove(log_path_.c_str());
}

std::string ServerProcess::MetricsText() const {
  std::smatch match;
  const std::string log = Log();
  if (!std::regex_search(log, match, std::regex("metrics listening on port ([0-9]+)"))) return "";
  return RunCommand(absl::StrCat("curl -sf http://127.0.0.1:", match[1].str(), "/metrics")).output;
}

double ServerProcess::MetricValue(const std::string& series) const {
  std::istringstream lines(MetricsText());
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::strtod(line.c_str() + series.size(), nullptr);
  }
  return -1;
}

bool ServerProcess::WaitForMetricAbove(const std::string& series, double value,
                                       std::chrono::seconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (MetricValue(series) <= value) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> ServerProcess::Health() const {
  auto stub = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return response.status();
}

absl::Status ServerProcess::WaitServing(std::chrono::seconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto health = Health();
    if (health.ok() && *health == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("server not SERVING in time; log:\n", Log()));
}

absl::StatusOr<int> ServerProcess::StopWith(int signal, std::chrono::seconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("server not running");
  kill(pid_, signal);
  return WaitExit(timeout);
}

absl::Status ServerProcess::WaitForLog(const std::string& text,
                                       std::chrono::seconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Log().find(text) != std::string::npos) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError("server never logged '" + text + "'; log:\n" + Log());
}

absl::StatusOr<int> ServerProcess::WaitExit(std::chrono::seconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("server not running");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      return 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::DeadlineExceededError("server did not exit in time");
}

CommandResult RunCommand(const std::string& command, bool merge_stderr) {
  CommandResult result;
  const std::string full = merge_stderr ? command + " 2>&1" : command;
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n = 0;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace cropshield::testing
