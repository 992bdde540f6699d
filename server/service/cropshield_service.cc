#include "server/service/cropshield_service.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/stopwatch.h"

namespace cropshield::service {
namespace {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

// Work not yet started for a call that was cancelled or whose deadline passed is skipped.
absl::Status CheckCallAlive(grpc::CallbackServerContext* context) {
  if (context->IsCancelled()) return absl::CancelledError("call cancelled by the client");
  if (context->deadline() < std::chrono::system_clock::now()) {
    return absl::DeadlineExceededError("deadline passed before processing started");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CropShieldServiceImpl>> CropShieldServiceImpl::Create(
    ServiceOptions options, const ModelRegistry* models) {
  if (models == nullptr) return absl::InvalidArgumentError("service needs a model registry");
  if (options.limits.max_image_bytes <= 0 || options.limits.max_image_pixels <= 0) {
    return absl::InvalidArgumentError("image limits must be positive");
  }
  BoundedExecutor::Options executor_options;
  executor_options.threads = options.workers;
  executor_options.queue_capacity = options.queue_capacity;
  auto executor = BoundedExecutor::Create(executor_options);
  if (!executor.ok()) return executor.status();
  return std::unique_ptr<CropShieldServiceImpl>(
      new CropShieldServiceImpl(options, models, *std::move(executor)));
}

CropShieldServiceImpl::CropShieldServiceImpl(ServiceOptions options, const ModelRegistry* models,
                                             std::unique_ptr<BoundedExecutor> executor)
    : options_(options), models_(models), executor_(std::move(executor)) {}

CropShieldServiceImpl::~CropShieldServiceImpl() { Shutdown(); }

void CropShieldServiceImpl::Shutdown() { executor_->Shutdown(); }

grpc::ServerUnaryReactor* CropShieldServiceImpl::Predict(grpc::CallbackServerContext* context,
                                                         const cropshield::v1::PredictRequest* request,
                                                         cropshield::v1::PredictResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const Stopwatch received;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  auto finish = [this, reactor, request](const absl::Status& status) {
    if (!status.ok() && status.code() != absl::StatusCode::kInvalidArgument &&
        status.code() != absl::StatusCode::kCancelled) {
      CS_LOG_WARNING("Predict failed", request->request_id().empty() ? "" : " request_id=",
                     request->request_id(), ": ", status.ToString());
    }
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    reactor->Finish(ToGrpcStatus(status));
  };

  absl::StatusOr<std::shared_ptr<const engine::Model>> model = models_->Get(request->model());
  if (!model.ok()) {
    finish(model.status());
    return reactor;
  }
  absl::StatusOr<int> top_k = ResolveTopK(request->top_k(), (*model)->num_classes());
  absl::Status valid = top_k.ok() ? CheckImageSize(request->image().data(), options_.limits)
                                  : top_k.status();
  if (!valid.ok()) {
    finish(valid);
    return reactor;
  }

  auto task = [this, context, request, response, finish, received, model = *std::move(model),
               k = *top_k]() {
    Stopwatch stage(received.start());
    const int64_t queue_us = stage.LapMicros();
    absl::Status alive = CheckCallAlive(context);
    if (!alive.ok()) {
      finish(alive);
      return;
    }
    absl::StatusOr<Classification> result =
        ClassifyImage(*model, request->image().data(), options_.limits);
    if (!result.ok()) {
      finish(result.status());
      return;
    }
    for (cropshield::v1::Prediction& p : TopK(result->probabilities, k, model->metadata())) {
      *response->add_predictions() = std::move(p);
    }
    response->mutable_model()->set_name(model->name());
    response->mutable_model()->set_version(model->version());
    response->set_request_id(request->request_id());
    response->set_image_width(result->image_width);
    response->set_image_height(result->image_height);
    cropshield::v1::Timing* timing = response->mutable_timing();
    timing->set_decode_us(result->decode_us);
    timing->set_preprocess_us(result->preprocess_us);
    timing->set_queue_us(queue_us);
    timing->set_inference_us(result->inference_us);
    timing->set_total_us(received.ElapsedMicros());
    finish(absl::OkStatus());
  };
  if (!executor_->TrySubmit(std::move(task))) {
    finish(absl::ResourceExhaustedError(absl::StrCat(
        "server queue is full (", options_.queue_capacity, " requests waiting); retry with backoff")));
  }
  return reactor;
}

}  // namespace cropshield::service
