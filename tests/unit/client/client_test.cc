// Tests of cropshield::client::Client against an in-process gRPC server that implements
// cropshield.v1.CropShieldService with scripted answers (status codes, pushback hints, delays), so
// the retry, deadline, metadata and TLS behaviour of the client is checked precisely over real
// gRPC. Behaviour against the real cropshield-server is in tests/integration/client_test.cc.
#include "cropshield/client/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cropshield::client {
namespace {

using ::testing::HasSubstr;

// One scripted answer: a status, optionally with a pushback hint, after an optional delay.
struct Answer {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string pushback;  // value of grpc-retry-pushback-ms; empty: none
  absl::Duration delay = absl::ZeroDuration();
};

class ScriptedService final : public v1::CropShieldService::Service {
 public:
  void Script(std::deque<Answer> answers) {
    absl::MutexLock lock(&mu_);
    answers_ = std::move(answers);
  }
  int calls() const { return calls_.load(); }
  std::vector<std::string> authorizations() {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }

  grpc::Status Predict(grpc::ServerContext* context, const v1::PredictRequest* request,
                       v1::PredictResponse* response) override {
    grpc::Status status = Next(context);
    if (status.ok()) {
      auto* p = response->add_predictions();
      p->set_label("Tomato__healthy");
      p->set_probability(0.9f);
      response->set_request_id(request->request_id());
    }
    return status;
  }
  grpc::Status Stats(grpc::ServerContext* context, const v1::StatsRequest*,
                     v1::StatsResponse* response) override {
    response->set_uptime_seconds(1);
    return Next(context);
  }
  grpc::Status ClearCache(grpc::ServerContext* context, const v1::ClearCacheRequest*,
                          v1::ClearCacheResponse*) override {
    return Next(context);
  }
  grpc::Status ReloadModel(grpc::ServerContext* context, const v1::ReloadModelRequest* request,
                           v1::ReloadModelResponse* response) override {
    response->mutable_current()->set_version(request->version());
    return Next(context);
  }

 private:
  grpc::Status Next(grpc::ServerContext* context) {
    calls_.fetch_add(1);
    Answer answer;
    {
      absl::MutexLock lock(&mu_);
      auto it = context->client_metadata().find("authorization");
      authorizations_.push_back(it == context->client_metadata().end()
                                    ? ""
                                    : std::string(it->second.data(), it->second.size()));
      if (!answers_.empty()) {
        answer = answers_.front();
        answers_.pop_front();
      }
    }
    absl::SleepFor(answer.delay);
    if (!answer.pushback.empty()) {
      context->AddTrailingMetadata("grpc-retry-pushback-ms", answer.pushback);
    }
    if (answer.code == grpc::StatusCode::OK) return grpc::Status::OK;
    return grpc::Status(answer.code, "scripted");
  }

  absl::Mutex mu_;
  std::deque<Answer> answers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> calls_{0};
};

class InProcessServer {
 public:
  explicit InProcessServer(
      std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", credentials, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~InProcessServer() { server_->Shutdown(std::chrono::system_clock::now()); }
  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  ScriptedService& service() { return service_; }

 private:
  ScriptedService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

Options FastRetries(const std::string& target) {
  Options options;
  options.target = target;
  options.retry.initial_backoff = absl::Milliseconds(20);
  options.retry.max_backoff = absl::Milliseconds(100);
  options.default_timeout = absl::Seconds(20);
  return options;
}

std::unique_ptr<Client> MakeClient(const Options& options) {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

TEST(ClientTest, UnavailableIsRetriedUntilSuccess) {
  InProcessServer server;
  server.service().Script({{grpc::StatusCode::UNAVAILABLE}, {grpc::StatusCode::UNAVAILABLE}});
  auto client = MakeClient(FastRetries(server.address()));
  v1::PredictRequest request;
  request.set_request_id("r1");
  CallInfo info;
  absl::StatusOr<v1::PredictResponse> response = client->Predict(request, {}, &info);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->request_id(), "r1");
  EXPECT_EQ(info.attempts, 3);
  EXPECT_EQ(server.service().calls(), 3);
  EXPECT_GT(info.backoff, absl::ZeroDuration());
  EXPECT_THAT(info.peer, HasSubstr("127.0.0.1"));
}

TEST(ClientTest, AttemptsAreBoundedAndTheLastErrorIsReturned) {
  InProcessServer server;
  server.service().Script({{grpc::StatusCode::UNAVAILABLE},
                           {grpc::StatusCode::UNAVAILABLE},
                           {grpc::StatusCode::UNAVAILABLE},
                           {grpc::StatusCode::UNAVAILABLE}});
  Options options = FastRetries(server.address());
  options.retry.max_attempts = 3;
  auto client = MakeClient(options);
  CallInfo info;
  absl::StatusOr<v1::StatsResponse> stats = client->Stats({}, &info);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(stats.status().message(), HasSubstr("after 3 attempts"));
  EXPECT_EQ(info.attempts, 3);
  EXPECT_EQ(server.service().calls(), 3);

  // A per-call limit overrides the client's.
  server.service().Script({{grpc::StatusCode::UNAVAILABLE}, {grpc::StatusCode::UNAVAILABLE}});
  CallOptions once;
  once.max_attempts = 1;
  EXPECT_EQ(client->Stats(once, &info).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(info.attempts, 1);
}

TEST(ClientTest, OtherErrorsAreNotRetried) {
  InProcessServer server;
  auto client = MakeClient(FastRetries(server.address()));
  for (grpc::StatusCode code :
       {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::RESOURCE_EXHAUSTED,
        grpc::StatusCode::PERMISSION_DENIED, grpc::StatusCode::INTERNAL}) {
    server.service().Script({{code}, {}});
    CallInfo info;
    absl::StatusOr<v1::PredictResponse> response = client->Predict({}, {}, &info);
    EXPECT_EQ(static_cast<int>(response.status().code()), static_cast<int>(code));
    EXPECT_EQ(response.status().message(), "scripted");
    EXPECT_EQ(info.attempts, 1);
  }
}

TEST(ClientTest, PushbackHintSetsTheWaitAndMakesResourceExhaustedRetryable) {
  InProcessServer server;
  server.service().Script({{grpc::StatusCode::RESOURCE_EXHAUSTED, "300"},
                           {grpc::StatusCode::RESOURCE_EXHAUSTED, "300"}});
  auto client = MakeClient(FastRetries(server.address()));
  CallInfo info;
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::PredictResponse> response = client->Predict({}, {}, &info);
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(info.attempts, 3);
  // The hint replaces the (20 ms) backoff: exactly 2 x 300 ms of waiting.
  EXPECT_EQ(info.backoff, absl::Milliseconds(600));
  EXPECT_GE(elapsed, absl::Milliseconds(600));
}

TEST(ClientTest, NegativePushbackStopsRetries) {
  InProcessServer server;
  server.service().Script({{grpc::StatusCode::UNAVAILABLE, "-1"}, {}});
  auto client = MakeClient(FastRetries(server.address()));
  CallInfo info;
  EXPECT_EQ(client->Predict({}, {}, &info).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(info.attempts, 1);
}

TEST(ClientTest, PushbackIgnoredWhenDisabled) {
  InProcessServer server;
  server.service().Script({{grpc::StatusCode::RESOURCE_EXHAUSTED, "10"}, {}});
  Options options = FastRetries(server.address());
  options.retry.honor_pushback = false;
  auto client = MakeClient(options);
  CallInfo info;
  EXPECT_EQ(client->Predict({}, {}, &info).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(info.attempts, 1);
}

TEST(ClientTest, DeadlineBoundsTheCallAndItsRetries) {
  InProcessServer server;
  // A pushback longer than the deadline: the client gives up at once instead of sleeping.
  server.service().Script({{grpc::StatusCode::UNAVAILABLE, "10000"}, {}});
  auto client = MakeClient(FastRetries(server.address()));
  CallOptions call;
  call.timeout = absl::Milliseconds(500);
  CallInfo info;
  absl::Time start = absl::Now();
  absl::StatusOr<v1::PredictResponse> response = client->Predict({}, call, &info);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(response.status().message(), HasSubstr("last error: UNAVAILABLE"));
  EXPECT_EQ(info.attempts, 1);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(400));

  // A server slower than the deadline: DEADLINE_EXCEEDED from gRPC after ~500 ms, not retried.
  server.service().Script({{grpc::StatusCode::OK, "", absl::Milliseconds(1500)}});
  start = absl::Now();
  response = client->Predict({}, call, &info);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(info.attempts, 1);
  EXPECT_GE(elapsed, absl::Milliseconds(450));
  EXPECT_LT(elapsed, absl::Milliseconds(1400));
}

TEST(ClientTest, AdminTokenIsSentOnlyWithAdminRpcs) {
  InProcessServer server;
  Options options = FastRetries(server.address());
  options.admin_token = "t0ken";
  auto client = MakeClient(options);
  ASSERT_TRUE(client->Predict({}).ok());
  ASSERT_TRUE(client->Stats().ok());
  ASSERT_TRUE(client->ClearCache({}).ok());
  v1::ReloadModelRequest reload;
  reload.set_version(7);
  absl::StatusOr<v1::ReloadModelResponse> reloaded = client->ReloadModel(reload);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->current().version(), 7);
  EXPECT_THAT(server.service().authorizations(),
              ::testing::ElementsAre("", "", "Bearer t0ken", "Bearer t0ken"));
}

TEST(ClientTest, CreateRejectsBadOptions) {
  auto code = [](const std::function<void(Options&)>& edit) {
    Options options;
    edit(options);
    return Client::Create(options).status().code();
  };
  EXPECT_EQ(code([](Options&) {}), absl::StatusCode::kOk);
  EXPECT_EQ(code([](Options& o) { o.target.clear(); }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) { o.retry.max_attempts = 0; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) { o.retry.jitter = 1.5; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) { o.retry.max_backoff = absl::Milliseconds(1); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) { o.lb_policy = "grpclb"; }), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) { o.default_timeout = absl::ZeroDuration(); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) {
              o.tls.enabled = true;
              o.tls.cert_chain_file = "/x.pem";
            }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code([](Options& o) {
              o.tls.enabled = true;
              o.tls.root_ca_file = "/no/such/ca.pem";
            }),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(code([](Options& o) { o.tls.root_ca_file = "/no/such/ca.pem"; }),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClientTest, RoundRobinIsTheDefaultForResolvedTargets) {
  auto lb = [](const std::string& target, const std::string& policy = "") {
    Options options;
    options.target = target;
    options.lb_policy = policy;
    return EffectiveLbPolicy(options);
  };
  EXPECT_EQ(lb("dns:///cropshield.prod.svc:50051"), "round_robin");
  EXPECT_EQ(lb("dns://10.0.0.10:53/cropshield:50051"), "round_robin");
  EXPECT_EQ(lb("localhost:50051"), "round_robin");
  EXPECT_EQ(lb("[::1]:50051"), "round_robin");
  EXPECT_EQ(lb("ipv4:10.0.0.1:50051,10.0.0.2:50051"), "round_robin");
  EXPECT_EQ(lb("unix:/run/cropshield.sock"), "");
  EXPECT_EQ(lb("dns:///cropshield:50051", "pick_first"), "pick_first");
}

TEST(ClientTest, BackoffGrowsExponentiallyUpToTheCap) {
  RetryPolicy policy;
  policy.initial_backoff = absl::Milliseconds(100);
  policy.backoff_multiplier = 2;
  policy.max_backoff = absl::Milliseconds(500);
  EXPECT_EQ(BackoffBeforeJitter(policy, 1), absl::Milliseconds(100));
  EXPECT_EQ(BackoffBeforeJitter(policy, 2), absl::Milliseconds(200));
  EXPECT_EQ(BackoffBeforeJitter(policy, 3), absl::Milliseconds(400));
  EXPECT_EQ(BackoffBeforeJitter(policy, 4), absl::Milliseconds(500));
  EXPECT_EQ(BackoffBeforeJitter(policy, 1000), absl::Milliseconds(500));
}

TEST(ClientTest, ConcurrentCallsShareOneClient) {
  InProcessServer server;
  auto client = MakeClient(FastRetries(server.address()));
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) ok += client->Predict({}).ok() ? 1 : 0;
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), 160);
}

// TLS and mutual TLS with certificates made by openssl for this test.
class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           absl::StrCat("cropshield_client_tls_", getpid()));
    std::filesystem::create_directories(*dir_);
    const std::string d = *dir_;
    const std::string script = absl::StrCat(
        "set -e; cd ", d, "; ",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj /CN=test-ca 2>/dev/null; ",
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 "
        "-subj /CN=other-ca 2>/dev/null; ",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext; ",
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
        "-subj /CN=localhost 2>/dev/null; ",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out server.pem -days 2 -extfile san.ext 2>/dev/null; ",
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
        "-subj /CN=client 2>/dev/null; ",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out client.pem -days 2 2>/dev/null");
    ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }

  static std::string Path(const std::string& name) { return *dir_ + "/" + name; }
  static std::string Read(const std::string& name) {
    std::ifstream in(Path(name));
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static std::shared_ptr<grpc::ServerCredentials> ServerCredentials(bool require_client_cert) {
    grpc::SslServerCredentialsOptions ssl(
        require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    ssl.pem_root_certs = Read("ca.pem");
    ssl.pem_key_cert_pairs.push_back({Read("server.key"), Read("server.pem")});
    return grpc::SslServerCredentials(ssl);
  }
  static Options TlsOptions(int port) {
    Options options;
    options.target = absl::StrCat("127.0.0.1:", port);  // IP SAN: no /etc/hosts lookup
    options.tls.enabled = true;
    options.tls.root_ca_file = Path("ca.pem");
    options.retry.max_attempts = 1;
    options.default_timeout = absl::Seconds(10);
    return options;
  }

  static std::string* dir_;
};
std::string* TlsTest::dir_ = nullptr;

TEST_F(TlsTest, ServerCertificateIsVerifiedAgainstTheGivenCa) {
  InProcessServer server(ServerCredentials(/*require_client_cert=*/false));
  auto client = MakeClient(TlsOptions(server.port()));
  absl::StatusOr<v1::PredictResponse> response = client->Predict({});
  EXPECT_TRUE(response.ok()) << response.status();

  Options wrong_ca = TlsOptions(server.port());
  wrong_ca.tls.root_ca_file = Path("other-ca.pem");
  EXPECT_EQ(MakeClient(wrong_ca)->Predict({}).status().code(), absl::StatusCode::kUnavailable);

  // Plaintext against a TLS server fails too.
  Options plaintext = TlsOptions(server.port());
  plaintext.tls = {};
  EXPECT_EQ(MakeClient(plaintext)->Predict({}).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, MutualTlsNeedsTheClientCertificate) {
  InProcessServer server(ServerCredentials(/*require_client_cert=*/true));
  Options mtls = TlsOptions(server.port());
  mtls.tls.cert_chain_file = Path("client.pem");
  mtls.tls.private_key_file = Path("client.key");
  absl::StatusOr<v1::PredictResponse> response = MakeClient(mtls)->Predict({});
  EXPECT_TRUE(response.ok()) << response.status();

  EXPECT_EQ(MakeClient(TlsOptions(server.port()))->Predict({}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(TlsTest, ServerNameOverrideAllowsAddressingByIp) {
  InProcessServer server(ServerCredentials(/*require_client_cert=*/false));
  Options options = TlsOptions(server.port());
  options.target = absl::StrCat("ipv4:127.0.0.1:", server.port());
  options.tls.server_name_override = "localhost";
  absl::StatusOr<v1::PredictResponse> response = MakeClient(options)->Predict({});
  EXPECT_TRUE(response.ok()) << response.status();
}

}  // namespace
}  // namespace cropshield::client
