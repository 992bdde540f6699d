// Assembles the server: on the gRPC port the CropShield service, the Open Inference Protocol
// service (inference.GRPCInferenceService), the health service and reflection; the HTTP/REST port
// (REST front end, Open Inference Protocol REST, web page); and the metrics (the registry the
// components record into and its HTTP /metrics endpoint).
// Health (and the protocol's ServerReady/ModelReady) report NOT_SERVING until SetServing(true) is
// called after the model is warm.
//
// Thread-safety: Start, SetServing and Shutdown are called by the owner (main); Shutdown may run
// while handlers are active on gRPC threads.
#ifndef CROPSHIELD_SERVER_APP_SERVER_H_
#define CROPSHIELD_SERVER_APP_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/idle_action.h"
#include "server/core/inference_core.h"
#include "server/grpc_api/cropshield_service.h"
#include "server/grpc_api/health_service.h"
#include "server/metrics/metrics_endpoint.h"
#include "server/metrics/metrics_registry.h"
#include "server/oip/inference_service.h"
#include "server/rest/rest_endpoint.h"

namespace grpc {
class Server;
}

namespace cropshield::app {

struct ServerOptions {
  std::string address = "0.0.0.0:50051";
  int64_t max_message_bytes = 16 << 20;
  // Largest response gRPC sends; larger ones fail with RESOURCE_EXHAUSTED.
  int64_t max_send_message_bytes = 64 << 20;
  // Memory gRPC's transport may use for all connections together (read buffers, HPACK tables);
  // beyond it gRPC pushes back on readers and refuses new connections. <= 0: gRPC's default.
  int64_t grpc_memory_quota_bytes = 256 << 20;
  // Connections with no call in flight for this long are closed (GOAWAY); zero: never.
  absl::Duration max_connection_idle = absl::Minutes(5);
  // Largest request metadata (headers) accepted, HPACK-decoded.
  int max_metadata_bytes = 16 << 10;
  // A new connection must finish its handshake (TLS and HTTP/2 preface) within this.
  absl::Duration handshake_timeout = absl::Seconds(10);
  // The inference core: limits, workers, batching, caches, admin policy, model loading.
  core::CoreOptions core;
  // The cropshield.v1 front end.
  grpc_api::ServiceOptions service;
  // TLS: PEM contents (not paths). With a certificate and key the port serves TLS only; with a
  // client CA as well, clients must present a certificate that CA signed (mutual TLS).
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string tls_client_ca_pem;
  // Concurrent calls (HTTP/2 streams) per client connection; 0 keeps gRPC's default.
  int max_concurrent_streams = 0;
  // Client connections older than this get a GOAWAY (gRPC adds +-10% jitter), so that clients
  // re-resolve DNS and spread onto replicas added since they connected; zero never closes them.
  // Calls in flight then have max_connection_age_grace to finish.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(10);
  // host:port of the HTTP /metrics endpoint; port 0 picks a free one; empty disables it. A
  // malformed address or one that cannot be bound (in use) fails Start, like the gRPC and HTTP
  // ports: a replica that cannot be scraped must not start serving unnoticed.
  std::string metrics_address;
  // The HTTP/REST port (empty address: off). It serves TLS with the gRPC port's certificates
  // (and client CA) unless http_plaintext_with_tls.
  rest::RestEndpointOptions http;
  bool http_plaintext_with_tls = false;
  // Once SERVING: after this long with no new call or model load and none in progress, the heap's
  // free memory goes back to the OS (engine::ReleaseFreeMemory); zero never releases it.
  absl::Duration release_memory_after_idle = absl::Seconds(1);
};

class CropShieldServer {
 public:
  // Binds the address and starts accepting calls (Predict answers UNAVAILABLE until a model is
  // installed in models()).
  static absl::StatusOr<std::unique_ptr<CropShieldServer>> Start(ServerOptions options);
  ~CropShieldServer();

  // The port actually bound (useful with port 0).
  int port() const { return port_; }
  // The metrics endpoint's port; 0 when it is disabled.
  int metrics_port() const { return metrics_endpoint_ ? metrics_endpoint_->port() : 0; }
  // The HTTP/REST port; 0 when off.
  int http_port() const { return http_endpoint_ ? http_endpoint_->port() : 0; }
  core::ModelRegistry& models() { return core_->models(); }
  // Null when ServerOptions::core.models.model_path was empty.
  core::ModelManager* model_manager() { return core_->model_manager(); }
  metrics::MetricsRegistry& metrics() { return metrics_; }

  // Health status of the server ("") and of its services, and the Open Inference Protocol's
  // readiness. The first SetServing(true) also starts releasing memory when idle
  // (ServerOptions::release_memory_after_idle).
  void SetServing(bool serving);

  // Stops model reloads, stops accepting calls, lets accepted calls finish for up to `grace`, then
  // cancels the rest and stops the workers.
  void Shutdown(std::chrono::milliseconds grace);

 private:
  CropShieldServer() = default;
  void RegisterStateCollectors();
  void RegisterBuildInfo(const std::string& device_spec);
  // An address that cannot be bound or is malformed fails Start; an empty one disables it.
  absl::Status StartMetricsEndpoint(const std::string& address);
  // An address that cannot be bound fails Start (like the gRPC port).
  absl::Status StartHttpEndpoint(const ServerOptions& options);
  absl::Status StartGrpc(const ServerOptions& options);
  absl::Status CreateInferenceService(const ServerOptions& options);

  metrics::MetricsRegistry metrics_;              // first: outlives everything registered in it
  std::atomic<int64_t> idle_memory_releases_{0};  // read by scrapes: before the registrations
  absl::Duration release_memory_after_idle_;
  std::unique_ptr<core::InferenceCore> core_;
  std::atomic<bool> serving_{false};  // read by oip_service_'s readiness checks
  std::unique_ptr<grpc_api::CropShieldService> service_;
  std::unique_ptr<oip::InferenceProtocol> oip_protocol_;  // the gRPC and REST front ends' own
  std::unique_ptr<oip::InferenceService> oip_service_;
  std::unique_ptr<grpc_api::HealthService> health_;  // before server_: outlives it
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<rest::RestEndpoint> http_endpoint_;
  std::unique_ptr<metrics::MetricsEndpoint> metrics_endpoint_;
  std::unique_ptr<IdleAction> idle_release_;  // after core_: probes it
  metrics::MetricsRegistry::Registration process_registration_;
  metrics::MetricsRegistry::Registration state_registration_;  // models and GPU memory
  metrics::MetricsRegistry::Registration build_info_registration_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace cropshield::app

#endif  // CROPSHIELD_SERVER_APP_SERVER_H_
