#include "server/core/call.h"

#include <utility>

#include "absl/time/clock.h"
#include "common/log.h"
#include "server/core/telemetry.h"

namespace cropshield::core {

Call::Call(Rpc rpc, Responder* responder, std::string request_id, Telemetry* telemetry,
           std::atomic<int64_t>* in_flight)
    : rpc_(rpc),
      responder_(responder),
      request_id_(std::move(request_id)),
      telemetry_(telemetry),
      in_flight_(in_flight) {
  in_flight_->fetch_add(1, std::memory_order_relaxed);
}

void Call::Finish(const absl::Status& status, const cropshield::v1::Timing* timing) {
  telemetry_->RecordCall(rpc_, status.code(), received_.ElapsedMicros(), model_, timing);
  if (status.code() == absl::StatusCode::kInternal || status.code() == absl::StatusCode::kUnknown ||
      status.code() == absl::StatusCode::kDataLoss) {
    CS_LOG_ERROR("call failed", request_id_.empty() ? "" : " request_id=", request_id_, ": ",
                 status.ToString());
  }
  in_flight_->fetch_sub(1, std::memory_order_relaxed);
  responder_->Finish(status);
}

absl::Status Call::CheckAlive() const {
  if (responder_->IsCancelled()) return absl::CancelledError("call cancelled by the client");
  if (responder_->deadline() < absl::Now()) {
    return absl::DeadlineExceededError("deadline passed before processing started");
  }
  return absl::OkStatus();
}

}  // namespace cropshield::core
