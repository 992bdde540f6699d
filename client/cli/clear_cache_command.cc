// clear-cache: one target, or every replica a name resolves to (--all-replicas).
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "client/cli/command_support.h"
#include "client/cli/commands.h"
#include "client/cli/json.h"
#include "client/cli/models.h"
#include "client/cli/replicas.h"
#include "cropshield/client/client.h"

namespace cropshield::cli {
namespace {

using client::Client;

v1::ClearCacheRequest ClearCacheRequestFor(const CliFlags& flags) {
  v1::ClearCacheRequest request;
  if (IsSet(flags.Model())) *request.mutable_model() = flags.Model();
  return request;
}

std::string ClearedText(const v1::ClearCacheResponse& response) {
  return absl::StrFormat(
      "cleared explain cache: %d entries, %d bytes; predict cache: %d entries, %d bytes",
      response.explain_entries_freed(), response.explain_bytes_freed(),
      response.predict_entries_freed(), response.predict_bytes_freed());
}

// The model check (ClearCache of an unknown model must not look like success), then ClearCache.
absl::StatusOr<v1::ClearCacheResponse> ClearOne(const Client& client, const CliFlags& flags) {
  if (absl::Status status = CheckModelServed(client, flags.Model()); !status.ok()) return status;
  return client.ClearCache(ClearCacheRequestFor(flags));
}

int ClearAllReplicas(const CliFlags& flags) {
  absl::StatusOr<std::vector<Replica>> replicas = ResolveReplicas(flags.connection.target);
  if (!replicas.ok()) {
    if (replicas.status().code() == absl::StatusCode::kInvalidArgument) {
      return Usage("clear-cache", replicas.status().message());
    }
    return Fail("clear-cache --all-replicas", replicas.status());
  }
  // Every client first: a usage problem (e.g. a plaintext token off the host) stops before any
  // call.
  std::vector<std::unique_ptr<Client>> clients;
  for (const Replica& replica : *replicas) {
    ClientSpec spec;
    spec.access = Access::kAdmin;
    spec.connection = 1;
    spec.target = replica.target;
    spec.tls_name = replica.host;
    absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection, spec);
    if (!client.ok()) return Usage("clear-cache", client.status().message());
    clients.push_back(*std::move(client));
  }
  Json results = Json::array();
  int failed = 0;
  absl::Status first_refusal;
  for (size_t i = 0; i < clients.size(); ++i) {
    const std::string& address = (*replicas)[i].address;
    absl::StatusOr<v1::ClearCacheResponse> response = ClearOne(*clients[i], flags);
    Json result = Json::object();
    result["address"] = address;
    result["ok"] = response.ok();
    if (response.ok()) {
      result["response"] = ProtoToJson(*response);
      if (!flags.json) std::cout << address << ": " << ClearedText(*response) << "\n";
    } else {
      ++failed;
      result["code"] = absl::StatusCodeToString(response.status().code());
      result["message"] = std::string(response.status().message());
      if (first_refusal.ok()) first_refusal = response.status();
      if (!flags.json) {
        std::cout << address << ": error: " << absl::StatusCodeToString(response.status().code())
                  << ": " << response.status().message() << "\n";
      }
    }
    results.push_back(std::move(result));
  }
  if (flags.json) {
    Json summary = Json::object();
    summary["replicas"] = std::move(results);
    summary["ok"] = failed == 0;
    std::cout << JsonLine(summary) << "\n";
  } else {
    std::cout << absl::StrFormat("%d of %d replicas cleared\n", clients.size() - failed,
                                 clients.size());
  }
  if (failed == 0) return kExitOk;
  std::cerr << absl::StrFormat("error: clear-cache: %d of %d replicas failed\n", failed,
                               clients.size());
  PrintAdminTokenHint(first_refusal, flags.connection);
  return kExitFailed;
}

}  // namespace

int RunClearCache(const CliFlags& flags) {
  if (flags.all_replicas) return ClearAllReplicas(flags);
  ClientSpec admin;
  admin.access = Access::kAdmin;
  absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection, admin);
  if (!client.ok()) return Usage("clear-cache", client.status().message());
  absl::StatusOr<v1::ClearCacheResponse> response = ClearOne(**client, flags);
  if (!response.ok()) {
    return FailAdmin("clear-cache", response.status(), flags.connection);
  }
  if (flags.json) {
    std::cout << JsonLine(ProtoToJson(*response)) << "\n";
  } else {
    std::cout << ClearedText(*response) << "\n";
  }
  return kExitOk;
}

}  // namespace cropshield::cli
