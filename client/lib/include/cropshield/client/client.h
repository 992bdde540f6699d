// cropshield::client::Client: the CropShield Serve API (cropshield.v1.CropShieldService) for C++
// callers, on top of the generated gRPC stub:
//   - a deadline on every call (CallOptions::timeout, else Options::default_timeout), which bounds
//     the whole call including retries and the waits between them;
//   - retries with exponential backoff and jitter on UNAVAILABLE (server starting or draining, no
//     connection yet), and on any code for which the server sent a `grpc-retry-pushback-ms` hint
//     (RESOURCE_EXHAUSTED when its queue is full): the hint replaces the backoff for that wait;
//   - channel arguments: message size limits, keepalive, reconnect backoff, load-balancing policy
//     (round_robin by default for dns:/// targets, so calls spread over every resolved address);
//   - TLS or mutual TLS channel credentials from PEM files;
//   - the admin bearer token (`authorization: Bearer <token>`) on ClearCache and ReloadModel only.
//
// Errors are absl::Status with the gRPC code carried over unchanged (absl and gRPC share the
// canonical codes), see proto/cropshield/v1/cropshield.proto for their meaning per RPC.
//
// Thread-safety: a Client is thread-safe. Every method may be called from any number of threads at
// once; they share one gRPC channel (HTTP/2 connections are multiplexed). Options are fixed at
// Create. Destroying the Client while calls are in progress on other threads is not allowed.
//
// Example:
//   cropshield::client::Options options;
//   options.target = "dns:///cropshield.default.svc.cluster.local:50051";
//   auto client = cropshield::client::Client::Create(options);
//   if (!client.ok()) return client.status();
//   cropshield::v1::PredictRequest request;
//   request.mutable_image()->set_data(jpeg_bytes);
//   absl::StatusOr<cropshield::v1::PredictResponse> response = (*client)->Predict(request);
#ifndef CROPSHIELD_CLIENT_CLIENT_H_
#define CROPSHIELD_CLIENT_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "cropshield/v1/cropshield.pb.h"
#include "grpcpp/channel.h"

namespace cropshield::client {

// How failed attempts are retried. A call makes at most `max_attempts` attempts and never waits
// past its deadline: when the next wait would end after the deadline the call ends at once with
// DEADLINE_EXCEEDED (its message names the last attempt's error).
struct RetryPolicy {
  // Attempts per call, the first included; 1 disables retries.
  int max_attempts = 5;
  // Wait before the second attempt; each further wait is `backoff_multiplier` times longer, capped
  // at `max_backoff`.
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  double backoff_multiplier = 2.0;
  // Each wait is drawn uniformly from [w * (1 - jitter), w * (1 + jitter)], so that many clients
  // that failed together do not retry in lockstep. In [0, 1].
  double jitter = 0.2;
  // Honour a `grpc-retry-pushback-ms` trailing-metadata hint: a non-negative value is the wait
  // before the next attempt (whatever the status code); a negative or malformed one means "do not
  // retry". Without the hint only UNAVAILABLE is retried.
  bool honor_pushback = true;
};

// TLS for the channel. With `enabled` false the channel is plaintext.
struct TlsOptions {
  bool enabled = false;
  // PEM file with the CA certificates that sign the server certificate; empty: the system roots.
  std::string root_ca_file;
  // PEM certificate chain and private key of this client, for servers that require client
  // certificates (mutual TLS, the server's --tls_client_ca). Both or neither.
  std::string cert_chain_file;
  std::string private_key_file;
  // Name to check the server certificate against instead of the target's host (testing, or
  // addressing servers by IP).
  std::string server_name_override;
};

struct Options {
  // Any gRPC target: "host:port", "dns:///host:port" (every A/AAAA record is a backend),
  // "ipv4:10.0.0.1:50051,10.0.0.2:50051", "unix:/path".
  std::string target = "localhost:50051";
  // Load-balancing policy: "round_robin" or "pick_first". Empty: round_robin for targets resolved
  // through DNS ("dns:///host:port" and plain "host:port") and for address lists ("ipv4:",
  // "ipv6:"); gRPC's default (pick_first) for other schemes such as "unix:".
  std::string lb_policy;
  // Deadline of a call whose CallOptions do not set one.
  absl::Duration default_timeout = absl::Seconds(30);
  RetryPolicy retry;
  TlsOptions tls;
  // Admin token sent as `authorization: Bearer <token>` with ClearCache and ReloadModel; empty:
  // none (the server then admits admin calls only if started with --admin_trust_loopback, from
  // loopback, or by client certificate). Create refuses a token on a plaintext channel to a target
  // that is not loopback (IsLoopbackTarget) unless allow_plaintext_token is set: anyone on the
  // path could read it.
  std::string admin_token;
  bool allow_plaintext_token = false;
  // Largest response accepted (Explain overlays of large photos are several MiB) and largest
  // request sent; -1: unlimited.
  int max_receive_message_bytes = 64 << 20;
  int max_send_message_bytes = -1;
  // HTTP/2 keepalive pings on idle connections (keeps connections through NATs and load balancers,
  // detects dead peers); zero disables. Servers reject pings more often than they allow (gRPC's
  // default server minimum is 5 minutes without calls), so keep keepalive_time generous.
  absl::Duration keepalive_time = absl::ZeroDuration();
  absl::Duration keepalive_timeout = absl::Seconds(20);
  bool keepalive_without_calls = false;
  // Reconnect backoff of the channel's subchannels after a failed connection attempt.
  absl::Duration min_reconnect_backoff = absl::Milliseconds(100);
  absl::Duration max_reconnect_backoff = absl::Seconds(5);
  // Prefix of the user-agent header.
  std::string user_agent = "cropshield-client/0.1";
  // Further channel arguments, applied last (they override the fields above).
  std::map<std::string, int> int_channel_args;
  std::map<std::string, std::string> string_channel_args;
};

// True when every address `target` names is on this host: unix sockets, "localhost", 127.0.0.0/8
// and ::1, with or without a "dns:///", "ipv4:" or "ipv6:" scheme.
bool IsLoopbackTarget(absl::string_view target);

// Per-call settings.
struct CallOptions {
  // Deadline of the whole call, retries included; zero: Options::default_timeout.
  absl::Duration timeout = absl::ZeroDuration();
  // Queue the attempt until the channel connects (up to the deadline) instead of failing it with
  // UNAVAILABLE at once while no connection is up.
  bool wait_for_ready = false;
  // Replaces Options::retry::max_attempts for this call when > 0.
  int max_attempts = 0;
};

// What happened during a call (optional output of every RPC method).
struct CallInfo {
  // Attempts made, >= 1.
  int attempts = 0;
  // Peer of the last attempt, e.g. "ipv4:127.0.0.1:50051" (empty if it never connected).
  std::string peer;
  // Total time spent waiting between attempts.
  absl::Duration backoff = absl::ZeroDuration();
};

class Client {
 public:
  // Validates `options`, reads the TLS files and creates the channel. Connecting is lazy: Create
  // succeeds while the server is still down.
  static absl::StatusOr<std::unique_ptr<Client>> Create(Options options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  absl::StatusOr<v1::PredictResponse> Predict(const v1::PredictRequest& request,
                                              const CallOptions& call = {},
                                              CallInfo* info = nullptr) const;
  absl::StatusOr<v1::ExplainResponse> Explain(const v1::ExplainRequest& request,
                                              const CallOptions& call = {},
                                              CallInfo* info = nullptr) const;
  absl::StatusOr<v1::StatsResponse> Stats(const CallOptions& call = {},
                                          CallInfo* info = nullptr) const;
  // Admin RPCs: send Options::admin_token.
  absl::StatusOr<v1::ClearCacheResponse> ClearCache(const v1::ClearCacheRequest& request,
                                                    const CallOptions& call = {},
                                                    CallInfo* info = nullptr) const;
  absl::StatusOr<v1::ReloadModelResponse> ReloadModel(const v1::ReloadModelRequest& request,
                                                      const CallOptions& call = {},
                                                      CallInfo* info = nullptr) const;

  // Convenience: Predict on encoded image bytes with the default model.
  absl::StatusOr<v1::PredictResponse> Classify(std::string image_bytes, int top_k = 3,
                                               const CallOptions& call = {}) const;

  // The channel and stub, for what this class does not wrap (e.g. the async callback API, or the
  // grpc.health.v1 service on the same channel). Calls made through them get no retries.
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  v1::CropShieldService::Stub* stub() const { return stub_.get(); }
  const Options& options() const { return options_; }

 private:
  Client(Options options, std::shared_ptr<grpc::Channel> channel);

  Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::CropShieldService::Stub> stub_;
};

// Exposed for tests and for callers running their own loops.
// Wait before attempt `retry` + 1 (retry >= 1) under `policy`, before jitter.
absl::Duration BackoffBeforeJitter(const RetryPolicy& policy, int retry);
// The load-balancing policy Create applies for `options` ("" means gRPC's default).
std::string EffectiveLbPolicy(const Options& options);

}  // namespace cropshield::client

#endif  // CROPSHIELD_CLIENT_CLIENT_H_
