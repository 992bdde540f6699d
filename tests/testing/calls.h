// Helpers shared by the integration tests: stubs with generous message limits, the sample photos'
// labels, and a batch of asynchronous calls issued at once.
//
// Thread-safety: ConcurrentCalls is owned by one test thread; its completion callbacks run on gRPC
// threads and only touch state under its mutex.
#ifndef CROPSHIELD_TESTS_TESTING_CALLS_H_
#define CROPSHIELD_TESTS_TESTING_CALLS_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "cropshield/v1/cropshield.grpc.pb.h"

namespace cropshield::testing {

// A stub over `credentials` (insecure by default) that sends and receives up to 64 MiB.
std::unique_ptr<v1::CropShieldService::Stub> MakeStub(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials(),
    const grpc::ChannelArguments& extra = grpc::ChannelArguments());

// `<samples_dir>/labels.json` as file name -> label.
std::map<std::string, std::string> SampleLabels(const std::string& samples_dir);

// `n` identical asynchronous calls issued at once; Wait() blocks until every one has finished.
template <typename Request, typename Response>
class ConcurrentCalls {
 public:
  using Start = std::function<void(grpc::ClientContext*, const Request*, Response*,
                                   std::function<void(grpc::Status)>)>;

  ConcurrentCalls(int n, Request request, std::chrono::milliseconds deadline, const Start& start)
      : request_(std::move(request)), statuses_(n), responses_(n) {
    for (int i = 0; i < n; ++i) {
      contexts_.push_back(std::make_unique<grpc::ClientContext>());
      contexts_.back()->set_deadline(std::chrono::system_clock::now() + deadline);
      start(contexts_.back().get(), &request_, &responses_[i], [this, i](grpc::Status status) {
        absl::MutexLock lock(&mu_);
        statuses_[i] = std::move(status);
        ++done_;
      });
    }
  }

  const std::vector<grpc::Status>& Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ConcurrentCalls* self) ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return self->done_ == static_cast<int>(self->statuses_.size());
        },
        this));
    return statuses_;
  }
  const std::vector<Response>& responses() const { return responses_; }
  // The server's trailing metadata of call `i` (after Wait()).
  const std::multimap<grpc::string_ref, grpc::string_ref>& trailers(int i) const {
    return contexts_[i]->GetServerTrailingMetadata();
  }

 private:
  const Request request_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<grpc::Status> statuses_;
  std::vector<Response> responses_;
};

using ConcurrentPredicts = ConcurrentCalls<v1::PredictRequest, v1::PredictResponse>;
using ConcurrentExplains = ConcurrentCalls<v1::ExplainRequest, v1::ExplainResponse>;

inline ConcurrentPredicts::Start AsyncPredict(v1::CropShieldService::Stub* stub) {
  return [stub](grpc::ClientContext* context, const v1::PredictRequest* request,
                v1::PredictResponse* response, std::function<void(grpc::Status)> done) {
    stub->async()->Predict(context, request, response, std::move(done));
  };
}

inline ConcurrentExplains::Start AsyncExplain(v1::CropShieldService::Stub* stub) {
  return [stub](grpc::ClientContext* context, const v1::ExplainRequest* request,
                v1::ExplainResponse* response, std::function<void(grpc::Status)> done) {
    stub->async()->Explain(context, request, response, std::move(done));
  };
}

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_TESTING_CALLS_H_
