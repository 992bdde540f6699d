#include "server/app/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "server/engine/model.h"
#include "server/grpc_api/health_service.h"
#include "server/metrics/build_info.h"
#include "server/metrics/metrics_endpoint.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/state_collector.h"

namespace cropshield::app {
namespace {

// gRPC's channel arguments are ints; longer durations are clamped rather than wrapped.
int MillisecondsForChannelArg(absl::Duration duration) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(duration), 0, INT_MAX));
}

}  // namespace

namespace {

// Bounds on what any one peer's connections and calls can make gRPC hold (hostile clients).
void ApplyConnectionLimits(const ServerOptions& options, grpc::ServerBuilder* builder) {
  // gRPC sets SO_REUSEPORT by default: a second server on a busy port would bind, log SERVING and
  // take part of the first one's connections. Without it the bind fails and Start refuses.
  builder->AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder->SetMaxSendMessageSize(static_cast<int>(
      std::clamp<int64_t>(options.max_send_message_bytes, 1, std::numeric_limits<int>::max())));
  if (options.grpc_memory_quota_bytes > 0) {
    grpc::ResourceQuota quota("cropshield-server");
    quota.Resize(static_cast<size_t>(options.grpc_memory_quota_bytes));
    builder->SetResourceQuota(quota);
  }
  if (options.max_connection_idle > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                                MillisecondsForChannelArg(options.max_connection_idle));
  }
  builder->AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, options.max_metadata_bytes);
  builder->AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                              MillisecondsForChannelArg(options.handshake_timeout));
  if (options.max_concurrent_streams > 0) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  }
  if (options.max_connection_age > absl::ZeroDuration()) {
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                                MillisecondsForChannelArg(options.max_connection_age));
    builder->AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                                MillisecondsForChannelArg(options.max_connection_age_grace));
  }
}

// PEM contents -> plaintext, TLS or mutual TLS credentials.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> CredentialsFor(
    const ServerOptions& options) {
  if (options.tls_cert_pem.empty() && options.tls_key_pem.empty()) {
    if (!options.tls_client_ca_pem.empty()) {
      return absl::InvalidArgumentError("a TLS client CA needs a server certificate and key too");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert_pem.empty() || options.tls_key_pem.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key");
  }
  grpc::SslServerCredentialsOptions tls(
      options.tls_client_ca_pem.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = options.tls_client_ca_pem;
  tls.pem_key_cert_pairs.push_back({options.tls_key_pem, options.tls_cert_pem});
  return grpc::SslServerCredentials(tls);
}

std::vector<metrics::StateCollector::ModelInfo> ModelInfos(const core::ModelRegistry& models) {
  std::vector<metrics::StateCollector::ModelInfo> infos;
  for (const auto& model : models.All()) {
    infos.push_back({model->name(), model->version(), model->device_name(), model->precision(),
                     model->load_report().load_seconds, model->load_report().warmup_seconds});
  }
  return infos;
}

std::vector<metrics::StateCollector::GpuMemory> GpuMemory() {
  std::vector<metrics::StateCollector::GpuMemory> gpus;
  for (const engine::GpuMemoryStats& gpu : engine::CudaMemoryStats()) {
    gpus.push_back({absl::StrCat("cuda:", gpu.device), static_cast<double>(gpu.allocated_bytes),
                    static_cast<double>(gpu.reserved_bytes)});
  }
  return gpus;
}

metrics::StateCollector::ModelLoads ModelLoads(const core::ModelManager& manager) {
  core::ModelLoadCounters counters = manager.Counters();
  metrics::StateCollector::ModelLoads loads;
  for (const auto& [key, count] : counters.loads) {
    loads.counts.push_back({key.first, key.second, static_cast<double>(count)});
  }
  loads.last_ok = counters.last_ok;
  loads.last_finished_unix_seconds = counters.last_finished_unix_seconds;
  return loads;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CropShieldServer>> CropShieldServer::Start(ServerOptions options) {
  std::unique_ptr<CropShieldServer> server(new CropShieldServer());
  server->release_memory_after_idle_ = options.release_memory_after_idle;
  auto core = core::InferenceCore::Create(options.core, &server->metrics_);
  if (!core.ok()) return core.status();
  server->core_ = *std::move(core);
  auto service = grpc_api::CropShieldService::Create(options.service, server->core_.get());
  if (!service.ok()) return service.status();
  server->service_ = *std::move(service);
  CS_RETURN_IF_ERROR(server->CreateInferenceService(options));
  server->RegisterStateCollectors();
  server->RegisterBuildInfo(options.core.models.load_options.device);
  CS_RETURN_IF_ERROR(server->StartMetricsEndpoint(options.metrics_address));
  CS_RETURN_IF_ERROR(server->StartGrpc(options));
  CS_RETURN_IF_ERROR(server->StartHttpEndpoint(options));
  return server;
}

absl::Status CropShieldServer::CreateInferenceService(const ServerOptions& options) {
  oip::ProtocolOptions protocol_options;
  protocol_options.serving = [this] { return serving_.load(std::memory_order_acquire); };
  protocol_options.batching = {options.core.max_batch_size, options.core.max_queue_delay_us};
  auto protocol = oip::InferenceProtocol::Create(std::move(protocol_options), core_.get());
  if (!protocol.ok()) return protocol.status();
  oip_protocol_ = *std::move(protocol);
  oip::InferenceServiceOptions oip_options;
  oip_options.max_response_send_time = options.service.max_response_send_time;
  auto oip_service =
      oip::InferenceService::Create(std::move(oip_options), core_.get(), oip_protocol_.get());
  if (!oip_service.ok()) return oip_service.status();
  oip_service_ = *std::move(oip_service);
  return absl::OkStatus();
}

// Process, models, idle releases, GPU memory and model loads, read at scrape time.
void CropShieldServer::RegisterStateCollectors() {
  process_registration_ = metrics_.Add(std::make_shared<metrics::ProcessCollector>());
  auto state = std::make_shared<metrics::StateCollector>();
  state->AddModels([models = &core_->models()] { return ModelInfos(*models); });
  state->AddIdleMemoryReleases([releases = &idle_memory_releases_] {
    return static_cast<double>(releases->load(std::memory_order_relaxed));
  });
  state->AddGpuMemory(GpuMemory);
  if (core::ModelManager* manager = core_->model_manager(); manager != nullptr) {
    state->AddModelLoads([manager] { return ModelLoads(*manager); });
  }
  state_registration_ = metrics_.Add(std::move(state));
}

// cropshield_build_info: this binary's version and revision, libtorch's version, the device.
void CropShieldServer::RegisterBuildInfo(const std::string& device_spec) {
  metrics::BuildInfo info = metrics::CompiledBuildInfo();
  info.torch_version = engine::TorchVersion();
  info.device = engine::ResolvedDeviceName(device_spec);
  build_info_registration_ = metrics_.Add(metrics::MakeBuildInfoCollector(std::move(info)));
}

absl::Status CropShieldServer::StartMetricsEndpoint(const std::string& address) {
  if (address.empty()) return absl::OkStatus();
  auto endpoint = metrics::MetricsEndpoint::Start(address, &metrics_);
  if (!endpoint.ok()) {
    // A port in use fails too: a replica whose metrics nobody can scrape must not look healthy.
    return absl::Status(endpoint.status().code(),
                        absl::StrCat("metrics port (--metrics_address=", address,
                                     "): ", endpoint.status().message()));
  }
  metrics_endpoint_ = *std::move(endpoint);
  return absl::OkStatus();
}

absl::Status CropShieldServer::StartHttpEndpoint(const ServerOptions& options) {
  if (options.http.address.empty()) return absl::OkStatus();
  rest::RestEndpointOptions http = options.http;
  if (!options.http_plaintext_with_tls) {  // the gRPC port's certificates (none: plaintext)
    http.tls = {options.tls_cert_pem, options.tls_key_pem, options.tls_client_ca_pem};
  }
  auto endpoint = rest::RestEndpoint::Start(std::move(http), core_.get(), oip_protocol_.get());
  if (!endpoint.ok()) {
    return absl::Status(endpoint.status().code(), absl::StrCat("HTTP/REST port (--http_address): ",
                                                               endpoint.status().message()));
  }
  http_endpoint_ = *std::move(endpoint);
  return absl::OkStatus();
}

absl::Status CropShieldServer::StartGrpc(const ServerOptions& options) {
  auto credentials = CredentialsFor(options);
  if (!credentials.ok()) return credentials.status();
  // Our own health service (NOT_SERVING from the first call on), not gRPC's default one.
  grpc::EnableDefaultHealthCheckService(false);
  health_ = std::make_unique<grpc_api::HealthService>(
      std::vector<std::string>{std::string(cropshield::v1::CropShieldService::service_full_name()),
                               std::string(inference::GRPCInferenceService::service_full_name())});
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, *credentials, &port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  ApplyConnectionLimits(options, &builder);
  builder.RegisterService(service_.get());
  builder.RegisterService(oip_service_.get());
  builder.RegisterService(health_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("gRPC port (--address=", options.address,
                     "): cannot listen (address in use by another process, or invalid)"));
  }
  return absl::OkStatus();
}

CropShieldServer::~CropShieldServer() { Shutdown(std::chrono::milliseconds(0)); }

void CropShieldServer::SetServing(bool serving) {
  serving_.store(serving && !shut_down_, std::memory_order_release);
  if (health_ != nullptr) health_->SetServing(serving);
  if (serving && idle_release_ == nullptr && !shut_down_ &&
      release_memory_after_idle_ > absl::ZeroDuration()) {
    auto idle = IdleAction::Create(
        release_memory_after_idle_,
        // Loads count as work: a hot reload while no calls come frees the replaced version.
        [core = core_.get(), manager = core_->model_manager()] {
          IdleAction::Activity activity{core->CallsStarted(), core->InFlight()};
          if (manager != nullptr) {
            activity.started += manager->LoadsStarted();
            activity.in_progress += manager->LoadsInProgress();
          }
          return activity;
        },
        [this] {
          engine::ReleaseFreeMemory();
          idle_memory_releases_.fetch_add(1, std::memory_order_relaxed);
        });
    if (idle.ok()) {
      idle_release_ = *std::move(idle);
    } else {
      CS_LOG_ERROR("idle memory release not started: ", idle.status().ToString());
    }
  }
}

void CropShieldServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  serving_.store(false, std::memory_order_release);
  idle_release_.reset();
  // Answers queued ReloadModel calls, so that the gRPC server can wait for every call below.
  if (core_ != nullptr && core_->model_manager() != nullptr) core_->model_manager()->Shutdown();
  if (server_ != nullptr) {
    // NOT_SERVING, and Watch streams end now: the shutdown below would wait for them.
    health_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + grace);
    server_->Wait();
  }
  // Its handler threads wait for calls the core is still answering.
  if (http_endpoint_ != nullptr) http_endpoint_->Shutdown();
  if (core_ != nullptr) core_->Shutdown();
  // Last, so that scrapes see the drain; the service is stopped but still alive here.
  if (metrics_endpoint_ != nullptr) metrics_endpoint_->Shutdown();
}

}  // namespace cropshield::app
