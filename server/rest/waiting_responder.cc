#include "server/rest/waiting_responder.h"

#include <utility>

namespace cropshield::rest {

void WaitingResponder::Hold(ByteBudget::Reservation reservation) {
  absl::MutexLock lock(&mu_);
  held_.push_back(std::move(reservation));
}

void WaitingResponder::Finish(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  status_ = status;
  finished_ = true;
}

absl::Status WaitingResponder::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(&finished_));
  return status_;
}

}  // namespace cropshield::rest
