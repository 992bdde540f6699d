// The reactor of every cropshield.v1 call, and the core's Responder for it. It lives until gRPC is
// done with the call (the response sent, or the call cancelled), holding the call's byte
// reservations until then; once the call is finished the send watch cancels it if the client does
// not take the response in time.
//
// Thread-safety: Hold and Finish may be called from any thread; Finish once.
#ifndef CROPSHIELD_SERVER_GRPC_API_CALL_REACTOR_H_
#define CROPSHIELD_SERVER_GRPC_API_CALL_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/expiry_watch.h"
#include "server/core/call.h"
#include "server/core/telemetry.h"

namespace cropshield::grpc_api {

class CallReactor final : public grpc::ServerUnaryReactor, public core::Responder {
 public:
  CallReactor(grpc::CallbackServerContext* context, ExpiryWatch* send_watch,
              core::Telemetry* telemetry, int64_t retry_pushback_ms)
      : context_(context),
        send_watch_(send_watch),
        telemetry_(telemetry),
        retry_pushback_ms_(retry_pushback_ms) {}

  bool IsCancelled() const override { return context_->IsCancelled(); }
  absl::Time deadline() const override;
  void Hold(ByteBudget::Reservation reservation) override;
  void Finish(const absl::Status& status) override;
  void OnDone() override;

 private:
  grpc::CallbackServerContext* const context_;
  ExpiryWatch* const send_watch_;
  core::Telemetry* const telemetry_;
  const int64_t retry_pushback_ms_;
  absl::Mutex mu_;
  std::vector<ByteBudget::Reservation> held_ ABSL_GUARDED_BY(mu_);
};

// The caller as the core sees it: peer, authorization header and verified mTLS identities.
core::Caller CallerOf(const grpc::CallbackServerContext& context);

}  // namespace cropshield::grpc_api

#endif  // CROPSHIELD_SERVER_GRPC_API_CALL_REACTOR_H_
