#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace cropshield::service {

absl::StatusOr<std::unique_ptr<CropShieldServer>> CropShieldServer::Start(ServerOptions options) {
  std::unique_ptr<CropShieldServer> server(new CropShieldServer());
  auto service = CropShieldServiceImpl::Create(options.service, &server->models_);
  if (!service.ok()) return service.status();
  server->service_ = *std::move(service);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.address, grpc::InsecureServerCredentials(), &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.address,
                                               " (address in use or invalid?)"));
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
}

}  // namespace cropshield::service
