// Assembles the gRPC server: the CropShield service, gRPC's health service and reflection.
// Health reports NOT_SERVING until MarkServing() is called after the model is warm.
//
// Thread-safety: Start, MarkServing and Shutdown are called by the owner (main); Shutdown may run
// while handlers are active on gRPC threads.
#ifndef CROPSHIELD_SERVER_SERVICE_SERVER_H_
#define CROPSHIELD_SERVER_SERVICE_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/service/cropshield_service.h"
#include "server/service/model_registry.h"

namespace grpc {
class Server;
}

namespace cropshield::service {

struct ServerOptions {
  std::string address = "0.0.0.0:50051";
  int64_t max_message_bytes = 16 << 20;
  ServiceOptions service;
};

class CropShieldServer {
 public:
  // Binds the address and starts accepting calls (Predict answers UNAVAILABLE until a model is
  // installed in models()).
  static absl::StatusOr<std::unique_ptr<CropShieldServer>> Start(ServerOptions options);
  ~CropShieldServer();

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  ModelRegistry& models() { return models_; }

  // Health status of the server ("") and of the CropShield service.
  void SetServing(bool serving);

  // Stops accepting calls, lets accepted calls finish for up to `grace`, then cancels the rest and
  // stops the workers.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  CropShieldServer() = default;

  ModelRegistry models_;
  std::unique_ptr<CropShieldServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cropshield::service

#endif  // CROPSHIELD_SERVER_SERVICE_SERVER_H_
