#include "server/grpc_api/call_reactor.h"

#include <chrono>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cropshield::grpc_api {

absl::Time CallReactor::deadline() const {
  const std::chrono::system_clock::time_point deadline = context_->deadline();
  // gRPC says "no deadline" with the largest time point, which absl cannot represent.
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

void CallReactor::Hold(ByteBudget::Reservation reservation) {
  absl::MutexLock lock(&mu_);
  held_.push_back(std::move(reservation));
}

void CallReactor::Finish(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    // Read by gRPC's retry machinery and by our client library.
    context_->AddTrailingMetadata("grpc-retry-pushback-ms", absl::StrCat(retry_pushback_ms_));
  }
  send_watch_->Watch(this, [context = context_, telemetry = telemetry_] {
    telemetry->CountRejected("send_timeout");
    context->TryCancel();
  });
  grpc::ServerUnaryReactor::Finish(status.ok()
                                       ? grpc::Status::OK
                                       : grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                                                      std::string(status.message())));
}

void CallReactor::OnDone() {
  send_watch_->Forget(this);
  delete this;  // releases the reservations
}

core::Caller CallerOf(const grpc::CallbackServerContext& context) {
  core::Caller caller;
  caller.peer = context.peer();
  auto it = context.client_metadata().find("authorization");
  if (it != context.client_metadata().end()) {
    caller.authorization.assign(it->second.data(), it->second.size());
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr && auth->IsPeerAuthenticated()) {
    for (const char* property : {"x509_common_name", "x509_subject_alternative_name"}) {
      for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
        caller.verified_identities.emplace_back(value.data(), value.size());
      }
    }
  }
  return caller;
}

}  // namespace cropshield::grpc_api
