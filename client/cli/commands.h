// The commands of `cropshield` (client/cli_main.cc parses the command line into CliFlags).
// Each returns the process exit code: kExitOk, kExitFailed (a call or the server failed, or an
// input could not be read) or kExitUsage (bad flags or arguments).
#ifndef CROPSHIELD_CLIENT_CLI_COMMANDS_H_
#define CROPSHIELD_CLIENT_CLI_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "client/bench.h"
#include "cropshield/v1/cropshield.pb.h"

namespace cropshield::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

struct ConnectionFlags {
  std::string target = "localhost:50051";
  std::string lb_policy;
  int max_attempts = 3;
  int deadline_ms = 30000;
  bool tls = false;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_server_name;
  // Admin commands only.
  std::string token;
  bool allow_plaintext_token = false;
};

struct ExplainFlags {
  std::string image;
  std::string out;
  std::string overlay;
  std::string raw;
  std::string image_map;
  std::string target_class;
  std::string method = "grad_cam";
  std::string colormap = "jet";
  double alpha = 0.5;
  bool bypass_cache = false;
};

struct CliFlags {
  ConnectionFlags connection;
  std::string model_name;
  int64_t model_version = 0;
  bool json = false;
  int top_k = 3;
  std::vector<std::string> inputs;  // predict
  ExplainFlags explain;
  std::string service;        // health
  bool all_replicas = false;  // clear-cache
  client::BenchOptions bench;

  v1::ModelSpec Model() const;
};

int RunPredict(const CliFlags& flags);
int RunExplain(const CliFlags& flags);
int RunStats(const CliFlags& flags);
int RunClearCache(const CliFlags& flags);
int RunReloadModel(const CliFlags& flags);
int RunHealth(const CliFlags& flags);
int RunBench(const CliFlags& flags);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_COMMANDS_H_
