#include "cropshield/client/client.h"

#include <grpc/grpc.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace cropshield::client {
namespace {

constexpr absl::string_view kPushbackKey = "grpc-retry-pushback-ms";

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::string> ReadPem(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", what, " file '", path, "'"));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (contents.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " file '", path, "' is empty"));
  }
  return contents.str();
}

int ClampMillis(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 0, INT32_MAX));
}

bool IsLoopbackHost(absl::string_view host) {
  if (host == "localhost" || host == "localhost." || host == "ip6-localhost" || host == "::1" ||
      host == "0:0:0:0:0:0:0:1") {
    return true;
  }
  absl::ConsumePrefix(&host, "::ffff:");
  std::vector<absl::string_view> octets = absl::StrSplit(host, '.');
  if (octets.size() != 4 || octets[0] != "127") return false;
  for (absl::string_view octet : octets) {
    int value = -1;
    if (!absl::SimpleAtoi(octet, &value) || value < 0 || value > 255) return false;
  }
  return true;
}

// The host of "host:port", "[v6]:port", "host" or a bare IPv6 address.
absl::string_view HostOf(absl::string_view address) {
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    return close == absl::string_view::npos ? address : address.substr(1, close - 1);
  }
  const size_t colon = address.find(':');
  if (colon != absl::string_view::npos && address.find(':', colon + 1) == absl::string_view::npos) {
    return address.substr(0, colon);
  }
  return address;
}

}  // namespace

bool IsLoopbackTarget(absl::string_view target) {
  if (absl::StartsWith(target, "unix:") || absl::StartsWith(target, "unix-abstract:")) return true;
  absl::string_view addresses = target;
  if (absl::ConsumePrefix(&addresses, "dns:")) {
    // dns:host:port, dns:///host:port or dns://resolver/host:port
    if (absl::ConsumePrefix(&addresses, "//"))
      addresses = addresses.substr(addresses.find('/') + 1);
  } else if (!absl::ConsumePrefix(&addresses, "ipv4:")) {
    absl::ConsumePrefix(&addresses, "ipv6:");
  }
  if (addresses.empty()) return false;
  for (absl::string_view address : absl::StrSplit(addresses, ',')) {
    if (!IsLoopbackHost(HostOf(address))) return false;
  }
  return true;
}

namespace {

absl::Status Validate(const Options& options) {
  if (options.target.empty()) return absl::InvalidArgumentError("target is empty");
  const RetryPolicy& r = options.retry;
  if (r.max_attempts < 1) return absl::InvalidArgumentError("retry.max_attempts must be >= 1");
  if (r.initial_backoff < absl::ZeroDuration() || r.max_backoff < r.initial_backoff) {
    return absl::InvalidArgumentError("retry backoff: need 0 <= initial_backoff <= max_backoff");
  }
  if (!(r.backoff_multiplier >= 1.0)) {
    return absl::InvalidArgumentError("retry.backoff_multiplier must be >= 1");
  }
  if (!(r.jitter >= 0.0 && r.jitter <= 1.0)) {
    return absl::InvalidArgumentError("retry.jitter must be in [0, 1]");
  }
  if (options.default_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_timeout must be positive");
  }
  if (!options.lb_policy.empty() && options.lb_policy != "round_robin" &&
      options.lb_policy != "pick_first") {
    return absl::InvalidArgumentError(
        absl::StrCat("lb_policy must be round_robin or pick_first, not '", options.lb_policy, "'"));
  }
  if (options.tls.cert_chain_file.empty() != options.tls.private_key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS client certificate: give both cert_chain_file and private_key_file, or neither");
  }
  if (!options.tls.enabled &&
      (!options.tls.root_ca_file.empty() || !options.tls.cert_chain_file.empty())) {
    return absl::InvalidArgumentError("TLS files given but tls.enabled is false");
  }
  if (!options.admin_token.empty() && !options.tls.enabled && !options.allow_plaintext_token &&
      !IsLoopbackTarget(options.target)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to send the admin token in plaintext to ", options.target,
        ": use TLS (--tls / --tls_ca) or, on a network you trust, --allow_plaintext_token"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const TlsOptions& tls) {
  if (!tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  if (!tls.root_ca_file.empty()) {
    absl::StatusOr<std::string> roots = ReadPem(tls.root_ca_file, "TLS root CA");
    if (!roots.ok()) return roots.status();
    ssl.pem_root_certs = *std::move(roots);
  }
  if (!tls.cert_chain_file.empty()) {
    absl::StatusOr<std::string> chain = ReadPem(tls.cert_chain_file, "TLS client certificate");
    if (!chain.ok()) return chain.status();
    absl::StatusOr<std::string> key = ReadPem(tls.private_key_file, "TLS client key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(chain);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

grpc::ChannelArguments ChannelArgs(const Options& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetMaxSendMessageSize(options.max_send_message_bytes);
  if (const std::string lb = EffectiveLbPolicy(options); !lb.empty()) {
    args.SetLoadBalancingPolicyName(lb);
  }
  if (options.keepalive_time > absl::ZeroDuration()) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ClampMillis(options.keepalive_time));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ClampMillis(options.keepalive_timeout));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, options.keepalive_without_calls ? 1 : 0);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  }
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, ClampMillis(options.min_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, ClampMillis(options.min_reconnect_backoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, ClampMillis(options.max_reconnect_backoff));
  if (!options.user_agent.empty()) args.SetUserAgentPrefix(options.user_agent);
  if (options.tls.enabled && !options.tls.server_name_override.empty()) {
    args.SetSslTargetNameOverride(options.tls.server_name_override);
  }
  for (const auto& [name, value] : options.int_channel_args) args.SetInt(name, value);
  for (const auto& [name, value] : options.string_channel_args) args.SetString(name, value);
  return args;
}

// The pushback hint of a finished attempt: nullopt-like -2 when absent, -1 for "do not retry"
// (negative or malformed), else the wait in milliseconds.
constexpr int64_t kNoPushback = -2;
int64_t Pushback(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(grpc::string_ref(kPushbackKey.data(), kPushbackKey.size()));
  if (it == trailers.end()) return kNoPushback;
  int64_t ms = 0;
  if (!absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) || ms < 0) {
    return -1;
  }
  return ms;
}

absl::Duration Jittered(absl::Duration wait, double jitter) {
  if (jitter <= 0 || wait <= absl::ZeroDuration()) return wait;
  thread_local absl::BitGen gen;
  return wait * absl::Uniform(gen, 1.0 - jitter, 1.0 + jitter);
}

}  // namespace

absl::Duration BackoffBeforeJitter(const RetryPolicy& policy, int retry) {
  double scale = std::pow(policy.backoff_multiplier, std::max(0, retry - 1));
  if (!std::isfinite(scale)) return policy.max_backoff;
  return std::min(policy.max_backoff, policy.initial_backoff * scale);
}

std::string EffectiveLbPolicy(const Options& options) {
  if (!options.lb_policy.empty()) return options.lb_policy;
  const std::string& t = options.target;
  if (absl::StartsWith(t, "dns:") || absl::StartsWith(t, "ipv4:") || absl::StartsWith(t, "ipv6:")) {
    return "round_robin";
  }
  // A target without a scheme ("host:port") goes through the DNS resolver too.
  const size_t colon = t.find(':');
  const bool has_scheme = colon != std::string::npos && t.compare(colon, 3, "://") == 0;
  const bool known_other_scheme = absl::StartsWith(t, "unix:") ||
                                  absl::StartsWith(t, "unix-abstract:") ||
                                  absl::StartsWith(t, "vsock:") || absl::StartsWith(t, "xds:");
  if (!has_scheme && !known_other_scheme) return "round_robin";
  return "";
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(Options options) {
  if (absl::Status valid = Validate(options); !valid.ok()) return valid;
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = Credentials(options.tls);
  if (!credentials.ok()) return credentials.status();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.target, *credentials, ChannelArgs(options));
  if (channel == nullptr) return absl::InternalError("grpc::CreateCustomChannel failed");
  return std::unique_ptr<Client>(new Client(std::move(options), std::move(channel)));
}

Client::Client(Options options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::CropShieldService::NewStub(channel_)) {}

Client::~Client() = default;

namespace {

// One call with retries. `attempt` runs one attempt on a fresh context and returns its status.
template <typename Attempt>
absl::Status CallWithRetries(const Options& options, const CallOptions& call, bool admin,
                             CallInfo* info, Attempt attempt) {
  const absl::Duration timeout =
      call.timeout > absl::ZeroDuration() ? call.timeout : options.default_timeout;
  const absl::Time deadline = absl::Now() + timeout;
  const int max_attempts = call.max_attempts > 0 ? call.max_attempts : options.retry.max_attempts;
  CallInfo local;
  CallInfo& out = info != nullptr ? *info : local;
  out = CallInfo();
  for (int n = 1;; ++n) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(deadline));
    context.set_wait_for_ready(call.wait_for_ready);
    if (admin && !options.admin_token.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Bearer ", options.admin_token));
    }
    const grpc::Status status = attempt(&context);
    out.attempts = n;
    out.peer = context.peer();
    if (status.ok()) return absl::OkStatus();

    const int64_t pushback = options.retry.honor_pushback ? Pushback(context) : kNoPushback;
    absl::Duration wait;
    if (pushback >= 0) {
      wait = absl::Milliseconds(pushback);
    } else if (pushback == kNoPushback && status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      wait = Jittered(BackoffBeforeJitter(options.retry, n), options.retry.jitter);
    } else {
      return FromGrpc(status);  // not retryable, or the server said not to retry
    }
    if (n >= max_attempts) {
      absl::Status last = FromGrpc(status);
      if (n == 1) return last;
      return absl::Status(last.code(), absl::StrCat(last.message(), " (after ", n, " attempts)"));
    }
    if (absl::Now() + wait >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "deadline of ", absl::FormatDuration(timeout), " reached after ", n,
          " attempt(s); last error: ", absl::StatusCodeToString(FromGrpc(status).code()), ": ",
          status.error_message()));
    }
    absl::SleepFor(wait);
    out.backoff += wait;
  }
}

template <typename Response, typename Invoke>
absl::StatusOr<Response> Run(const Options& options, const CallOptions& call, bool admin,
                             CallInfo* info, Invoke invoke) {
  Response response;
  absl::Status status =
      CallWithRetries(options, call, admin, info, [&](grpc::ClientContext* context) {
        response.Clear();
        return invoke(context, &response);
      });
  if (!status.ok()) return status;
  return response;
}

}  // namespace

absl::StatusOr<v1::PredictResponse> Client::Predict(const v1::PredictRequest& request,
                                                    const CallOptions& call, CallInfo* info) const {
  return Run<v1::PredictResponse>(options_, call, /*admin=*/false, info,
                                  [&](grpc::ClientContext* context, v1::PredictResponse* response) {
                                    return stub_->Predict(context, request, response);
                                  });
}

absl::StatusOr<v1::ExplainResponse> Client::Explain(const v1::ExplainRequest& request,
                                                    const CallOptions& call, CallInfo* info) const {
  return Run<v1::ExplainResponse>(options_, call, /*admin=*/false, info,
                                  [&](grpc::ClientContext* context, v1::ExplainResponse* response) {
                                    return stub_->Explain(context, request, response);
                                  });
}

absl::StatusOr<v1::StatsResponse> Client::Stats(const CallOptions& call, CallInfo* info) const {
  const v1::StatsRequest request;
  return Run<v1::StatsResponse>(options_, call, /*admin=*/false, info,
                                [&](grpc::ClientContext* context, v1::StatsResponse* response) {
                                  return stub_->Stats(context, request, response);
                                });
}

absl::StatusOr<v1::ClearCacheResponse> Client::ClearCache(const v1::ClearCacheRequest& request,
                                                          const CallOptions& call,
                                                          CallInfo* info) const {
  return Run<v1::ClearCacheResponse>(
      options_, call, /*admin=*/true, info,
      [&](grpc::ClientContext* context, v1::ClearCacheResponse* response) {
        return stub_->ClearCache(context, request, response);
      });
}

absl::StatusOr<v1::ReloadModelResponse> Client::ReloadModel(const v1::ReloadModelRequest& request,
                                                            const CallOptions& call,
                                                            CallInfo* info) const {
  return Run<v1::ReloadModelResponse>(
      options_, call, /*admin=*/true, info,
      [&](grpc::ClientContext* context, v1::ReloadModelResponse* response) {
        return stub_->ReloadModel(context, request, response);
      });
}

absl::StatusOr<v1::PredictResponse> Client::Classify(std::string image_bytes, int top_k,
                                                     const CallOptions& call) const {
  v1::PredictRequest request;
  request.mutable_image()->set_data(std::move(image_bytes));
  request.set_top_k(top_k);
  return Predict(request, call);
}

}  // namespace cropshield::client
