#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/engine/model.h"
#include "server/metrics/metrics_endpoint.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/state_collector.h"

namespace cropshield::service {

absl::StatusOr<std::unique_ptr<CropShieldServer>> CropShieldServer::Start(ServerOptions options) {
  std::unique_ptr<CropShieldServer> server(new CropShieldServer());
  auto service =
      CropShieldServiceImpl::Create(options.service, &server->models_, &server->metrics_);
  if (!service.ok()) return service.status();
  server->service_ = *std::move(service);

  server->process_registration_ =
      server->metrics_.Add(std::make_shared<metrics::ProcessCollector>());
  auto state = std::make_shared<metrics::StateCollector>();
  state->AddModels([models = &server->models_] {
    std::vector<metrics::StateCollector::ModelInfo> infos;
    for (const auto& model : models->All()) {
      infos.push_back({model->name(), model->version(), model->device_name(), model->precision(),
                       model->load_report().load_seconds, model->load_report().warmup_seconds});
    }
    return infos;
  });
  state->AddGpuMemory([] {
    std::vector<metrics::StateCollector::GpuMemory> gpus;
    for (const engine::GpuMemoryStats& gpu : engine::CudaMemoryStats()) {
      gpus.push_back({absl::StrCat("cuda:", gpu.device), static_cast<double>(gpu.allocated_bytes),
                      static_cast<double>(gpu.reserved_bytes)});
    }
    return gpus;
  });
  server->state_registration_ = server->metrics_.Add(std::move(state));
  if (!options.metrics_address.empty()) {
    auto endpoint = metrics::StartMetricsEndpoint(options.metrics_address, &server->metrics_);
    if (endpoint.ok()) {
      server->metrics_endpoint_ = *std::move(endpoint);
    } else if (absl::IsUnavailable(endpoint.status())) {
      CS_LOG_ERROR("metrics endpoint disabled: ", endpoint.status().message());
    } else {
      return endpoint.status();
    }
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.address, " (address in use or invalid?)"));
  }
  server->SetServing(false);
  return server;
}

CropShieldServer::~CropShieldServer() { Shutdown(std::chrono::milliseconds(0)); }

void CropShieldServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);
  health->SetServingStatus(std::string(cropshield::v1::CropShieldService::service_full_name()),
                           serving);
}

void CropShieldServer::Shutdown(std::chrono::milliseconds grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    SetServing(false);
    server_->Shutdown(std::chrono::system_clock::now() + grace);
    server_->Wait();
  }
  if (service_ != nullptr) service_->Shutdown();
  // Last, so that scrapes see the drain; the service is stopped but still alive here.
  if (metrics_endpoint_ != nullptr) metrics_endpoint_->Shutdown();
}

}  // namespace cropshield::service
