// A core::Responder for a handler thread that waits for its call's outcome: the REST handlers
// run on HttpServer's handler pool, hand a call to the core and block until the core finishes
// it (the core finishes every call; work past the deadline ends as DEADLINE_EXCEEDED).
//
// Thread-safety: Finish and Hold from any thread; Wait from the handler thread.
#ifndef CROPSHIELD_SERVER_REST_WAITING_RESPONDER_H_
#define CROPSHIELD_SERVER_REST_WAITING_RESPONDER_H_

#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/core/call.h"

namespace cropshield::rest {

class WaitingResponder : public core::Responder {
 public:
  explicit WaitingResponder(absl::Time deadline) : deadline_(deadline) {}

  bool IsCancelled() const override { return false; }  // the loop owns the socket
  absl::Time deadline() const override { return deadline_; }
  void Hold(ByteBudget::Reservation reservation) override ABSL_LOCKS_EXCLUDED(mu_);
  void Finish(const absl::Status& status) override ABSL_LOCKS_EXCLUDED(mu_);

  // Blocks until Finish; returns its status. The held reservations go when the responder does
  // (after the handler has written the response).
  absl::Status Wait() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const absl::Time deadline_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<ByteBudget::Reservation> held_ ABSL_GUARDED_BY(mu_);
};

// Runs one core call on this thread: `start` hands it to the core with the responder it is given;
// returns the call's status once the core has finished it.
template <typename Start>
absl::Status CallAndWait(absl::Time deadline, Start start) {
  WaitingResponder responder(deadline);
  start(&responder);
  return responder.Wait();
}

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_WAITING_RESPONDER_H_
