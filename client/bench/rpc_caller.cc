#include "client/bench/rpc_caller.h"

#include <chrono>
#include <utility>

#include "grpcpp/client_context.h"

namespace cropshield::bench {
namespace {

// Everything one call needs until its reply: gRPC reads the request and writes the response
// after Call returns.
struct InFlightCall {
  grpc::ClientContext context;
  v1::PredictRequest predict_request;
  v1::PredictResponse predict_response;
  v1::ExplainRequest explain_request;
  v1::ExplainResponse explain_response;
  std::function<void(const grpc::Status&)> done;
};

}  // namespace

RpcCaller::RpcCaller(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                     RpcSettings settings)
    : settings_(std::move(settings)) {
  for (const auto& channel : channels) stubs_.push_back(v1::CropShieldService::NewStub(channel));
}

void RpcCaller::Call(const std::string& photo, std::function<void(const grpc::Status&)> done) {
  auto* call = new InFlightCall;
  call->done = std::move(done);
  call->context.set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(settings_.deadline_ms));
  auto finish = [call](grpc::Status status) {
    call->done(status);
    delete call;
  };
  v1::CropShieldService::Stub& stub = *stubs_[next_stub_.fetch_add(1) % stubs_.size()];
  if (settings_.explain) {
    call->explain_request.mutable_image()->set_data(photo);
    call->explain_request.set_bypass_cache(settings_.bypass_cache);
    *call->explain_request.mutable_model() = settings_.model;
    stub.async()->Explain(&call->context, &call->explain_request, &call->explain_response,
                          std::move(finish));
  } else {
    call->predict_request.mutable_image()->set_data(photo);
    call->predict_request.set_top_k(settings_.top_k);
    *call->predict_request.mutable_model() = settings_.model;
    stub.async()->Predict(&call->context, &call->predict_request, &call->predict_response,
                          std::move(finish));
  }
}

}  // namespace cropshield::bench
