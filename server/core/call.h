// One call through the core, and the front end's side of it.
//
// A front end (gRPC, later HTTP) implements Responder for each call and hands it to the core with
// the request and the response to fill; the core finishes it exactly once, on whichever thread
// the outcome is known (a handler thread for refusals and cache hits, a worker or batch thread
// otherwise). The request, response and responder must stay valid until Responder::Finish.
//
// Thread-safety: Call is used by one thread at a time (the one its job is on); Finish may run on
// any thread. Responder implementations must accept Hold and Finish from any thread.
#ifndef CROPSHIELD_SERVER_CORE_CALL_H_
#define CROPSHIELD_SERVER_CORE_CALL_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/byte_budget.h"
#include "common/stopwatch.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/rpc.h"

namespace cropshield::core {

class Telemetry;

// The front end's side of one call.
class Responder {
 public:
  virtual ~Responder() = default;
  // True once the client has gone away (cancelled the call, or its connection closed).
  virtual bool IsCancelled() const = 0;
  // When the client stops waiting; absl::InfiniteFuture() without a deadline.
  virtual absl::Time deadline() const = 0;
  // Keeps `reservation` until the transport is done with the call (the response sent, or the
  // call dropped): an unread response still counts against its budget.
  virtual void Hold(ByteBudget::Reservation reservation) = 0;
  // The call's outcome, with the response complete when OK. Called exactly once.
  virtual void Finish(const absl::Status& status) = 0;
};

// Who is calling: what admin checks and redaction look at.
struct Caller {
  std::string peer;           // transport peer, e.g. "ipv4:127.0.0.1:5555"
  std::string authorization;  // the "authorization" header; empty when absent
  // Identities of a client certificate the TLS layer verified (mutual TLS only).
  std::vector<std::string> verified_identities;
};

// An accepted call: finishes its responder once and reports it to telemetry once.
class Call {
 public:
  // Counts the call in `in_flight` until Finish.
  Call(Rpc rpc, Responder* responder, std::string request_id, Telemetry* telemetry,
       std::atomic<int64_t>* in_flight);

  // Reports the call (and `timing`'s stages, when given), then finishes the responder.
  void Finish(const absl::Status& status, const cropshield::v1::Timing* timing = nullptr);

  // CANCELLED or DEADLINE_EXCEEDED for work not worth starting any more; OK otherwise.
  absl::Status CheckAlive() const;

  Rpc rpc() const { return rpc_; }
  Responder* responder() const { return responder_; }
  int64_t ElapsedMicros() const { return received_.ElapsedMicros(); }
  const std::string& request_id() const { return request_id_; }
  // A malformed request_id is neither echoed nor logged.
  void ForgetRequestId() { request_id_.clear(); }
  // The answering model's name: the label of the call's stage metrics.
  void set_model(std::string model) { model_ = std::move(model); }

 private:
  const Rpc rpc_;
  Responder* const responder_;
  std::string request_id_;
  Telemetry* const telemetry_;
  std::atomic<int64_t>* const in_flight_;
  std::string model_;
  Stopwatch received_;
};

}  // namespace cropshield::core

#endif  // CROPSHIELD_SERVER_CORE_CALL_H_
