// The gRPC callback service. Handlers only validate and enqueue: decoding, preprocessing and
// inference run on the worker executor, whose tasks finish the reactor.
//
// Thread-safety: handlers are called concurrently by gRPC; all members are thread-safe.
// Shutdown order: stop the grpc::Server first (it waits for in-flight calls, whose tasks are
// still running on the executor), then call Shutdown().
#ifndef CROPSHIELD_SERVER_SERVICE_CROPSHIELD_SERVICE_H_
#define CROPSHIELD_SERVER_SERVICE_CROPSHIELD_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "common/bounded_executor.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "server/service/model_registry.h"
#include "server/service/predict_pipeline.h"

namespace cropshield::service {

struct ServiceOptions {
  ImageLimits limits;
  // Threads that decode, preprocess and run inference.
  int workers = 1;
  // Requests waiting for a worker; beyond it calls get RESOURCE_EXHAUSTED.
  size_t queue_capacity = 256;
};

class CropShieldServiceImpl final : public cropshield::v1::CropShieldService::CallbackService {
 public:
  // `models` must outlive the service.
  static absl::StatusOr<std::unique_ptr<CropShieldServiceImpl>> Create(ServiceOptions options,
                                                                       const ModelRegistry* models);
  ~CropShieldServiceImpl() override;

  grpc::ServerUnaryReactor* Predict(grpc::CallbackServerContext* context,
                                    const cropshield::v1::PredictRequest* request,
                                    cropshield::v1::PredictResponse* response) override;

  // Calls accepted and not yet finished.
  int64_t InFlight() const { return in_flight_.load(std::memory_order_relaxed); }

  // Runs the queued work to completion and stops the workers.
  void Shutdown();

 private:
  CropShieldServiceImpl(ServiceOptions options, const ModelRegistry* models,
                        std::unique_ptr<BoundedExecutor> executor);

  const ServiceOptions options_;
  const ModelRegistry* const models_;
  std::unique_ptr<BoundedExecutor> executor_;
  std::atomic<int64_t> in_flight_{0};
};

}  // namespace cropshield::service

#endif  // CROPSHIELD_SERVER_SERVICE_CROPSHIELD_SERVICE_H_
