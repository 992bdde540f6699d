// cropshield::client::Client against real cropshield-server processes with the bundled demo model:
// retries while the server comes up, deadlines, the admin bearer token, mutual TLS with the
// server's --tls_* flags, and dns:/// round_robin over two server processes (names resolved by a
// small DNS responder in this test, because /etc/hosts cannot give one name two loopback
// addresses).
#include "cropshield/client/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/dns_responder.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::client::CallInfo;
using ::cropshield::client::CallOptions;
using ::cropshield::client::Client;
using ::cropshield::client::Options;
using ::cropshield::testing::CommandResult;
using ::cropshield::testing::DnsResponder;
using ::cropshield::testing::kCli;
using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kSamples;
using ::cropshield::testing::kServer;
using ::cropshield::testing::kSourceDir;
using ::cropshield::testing::ReadFileOrDie;
using ::cropshield::testing::RunCommand;
using ::cropshield::testing::ServerProcess;
using ::testing::HasSubstr;

const std::string kSample = "tomato_early_blight_600x800.jpg";
const std::string kSampleLabel = "Tomato__early_blight";

std::vector<std::string> ServerArgs(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--model=" + kDemoRepository,
                                   "--metrics_address=", "--warmup_iterations=1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::unique_ptr<Client> MakeClient(Options options) {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

v1::PredictRequest SampleRequest() {
  v1::PredictRequest request;
  request.mutable_image()->set_data(ReadFileOrDie(kSamples + "/" + kSample));
  return request;
}

// A TCP port that was free a moment ago.
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

int64_t PredictCalls(const v1::StatsResponse& stats) {
  for (const auto& rpc : stats.rpcs()) {
    if (rpc.rpc() == "Predict") return rpc.total();
  }
  return 0;
}

TEST(ClientIntegrationTest, RetriesUntilAServerStartedAfterTheClientAnswers) {
  const int port = FreePort();
  Options options;
  options.target = absl::StrCat("127.0.0.1:", port);
  options.retry.max_attempts = 1000;  // bounded by the deadline below
  options.retry.initial_backoff = absl::Milliseconds(50);
  options.retry.max_backoff = absl::Milliseconds(300);
  options.min_reconnect_backoff = absl::Milliseconds(50);
  options.max_reconnect_backoff = absl::Milliseconds(300);
  auto client = MakeClient(options);

  absl::StatusOr<v1::PredictResponse> response;
  CallInfo info;
  std::thread caller([&] {
    CallOptions call;
    call.timeout = absl::Seconds(120);
    response = client->Predict(SampleRequest(), call, &info);
  });
  // Nothing listens yet: the first attempts fail with UNAVAILABLE (connection refused), then the
  // server answers UNAVAILABLE while it loads and warms up, then the call succeeds.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  auto server = ServerProcess::Start(kServer, ServerArgs(), options.target);
  caller.join();
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(response.ok()) << response.status() << "\n" << (*server)->Log();
  EXPECT_EQ(response->predictions(0).label(), kSampleLabel);
  EXPECT_GT(info.attempts, 2);
  EXPECT_GT(info.backoff, absl::Milliseconds(500));
}

TEST(ClientIntegrationTest, DeadlineEndsRetriesAgainstADownServer) {
  Options options;
  options.target = absl::StrCat("127.0.0.1:", FreePort());
  options.retry.max_attempts = 1000;
  options.retry.initial_backoff = absl::Milliseconds(20);
  options.retry.max_backoff = absl::Milliseconds(100);
  auto client = MakeClient(options);
  CallOptions call;
  call.timeout = absl::Seconds(1);
  CallInfo info;
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::PredictResponse> response = client->Predict(SampleRequest(), call, &info);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded) << response.status();
  EXPECT_GT(info.attempts, 1);
  EXPECT_LT(elapsed, absl::Milliseconds(1500));
}

TEST(ClientIntegrationTest, DeadlineEndsACallToAPeerThatNeverAnswers) {
  // A listening socket whose connections are accepted by the kernel but never served.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  Options options;
  options.target = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  auto client = MakeClient(options);
  CallOptions call;
  call.timeout = absl::Milliseconds(800);
  call.wait_for_ready = true;
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::StatsResponse> stats = client->Stats(call);
  const absl::Duration elapsed = absl::Now() - start;
  close(fd);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDeadlineExceeded) << stats.status();
  EXPECT_GE(elapsed, absl::Milliseconds(700));
  EXPECT_LT(elapsed, absl::Milliseconds(2000));
}

TEST(ClientIntegrationTest, AdminRpcsSendTheBearerToken) {
  const std::string token_file = ::testing::TempDir() + "/client_test_admin_token";
  std::ofstream(token_file) << "client-test-token\n";
  auto server = ServerProcess::Start(kServer, ServerArgs({"--admin_token_file=" + token_file}));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());

  Options options;
  options.target = (*server)->address();
  auto anonymous = MakeClient(options);
  options.admin_token = "wrong";
  auto wrong = MakeClient(options);
  options.admin_token = "client-test-token";
  auto admin = MakeClient(options);

  // Fill the explanation cache, then clear it.
  v1::ExplainRequest explain;
  explain.mutable_image()->set_data(SampleRequest().image().data());
  ASSERT_TRUE(admin->Explain(explain).ok());
  EXPECT_EQ(anonymous->ClearCache({}).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(wrong->ClearCache({}).status().code(), absl::StatusCode::kPermissionDenied);
  absl::StatusOr<v1::ClearCacheResponse> cleared = admin->ClearCache({});
  ASSERT_TRUE(cleared.ok()) << cleared.status();
  EXPECT_EQ(cleared->explain_entries_freed(), 1);

  // ReloadModel takes the same credentials; version 1 is already serving, so nothing loads.
  EXPECT_EQ(anonymous->ReloadModel({}).status().code(), absl::StatusCode::kPermissionDenied);
  v1::ReloadModelRequest reload;
  reload.set_version(1);
  absl::StatusOr<v1::ReloadModelResponse> reloaded = admin->ReloadModel(reload);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_FALSE(reloaded->reloaded());
  EXPECT_EQ(reloaded->current().version(), 1);

  // The CLI passes --token the same way.
  CommandResult cli = RunCommand(absl::StrCat(kCli, " reload-model --model_version=1 --token=",
                                              "client-test-token --target=", options.target),
                                 /*merge_stderr=*/true);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr("cropshield-demo v1 already serving"));
  CommandResult denied =
      RunCommand(absl::StrCat(kCli, " reload-model --target=", options.target), true);
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.output, HasSubstr("PERMISSION_DENIED"));
}

TEST(ClientIntegrationTest, OverloadPushbackIsHonouredAndEveryCallSucceeds) {
  // One call at a time: concurrent calls get RESOURCE_EXHAUSTED with grpc-retry-pushback-ms.
  auto server = ServerProcess::Start(
      kServer, ServerArgs({"--max_inflight_calls=1", "--retry_pushback_ms=20"}));
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->WaitServing(std::chrono::seconds(60)).ok());
  Options options;
  options.target = (*server)->address();
  options.retry.max_attempts = 1000;  // bounded by the deadline
  auto client = MakeClient(options);
  v1::ExplainRequest request;
  request.mutable_image()->set_data(SampleRequest().image().data());
  request.set_bypass_cache(true);  // every call computes: long enough to overlap

  constexpr int kThreads = 6, kCallsPerThread = 3;
  std::atomic<int> ok{0}, attempts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        CallInfo info;
        CallOptions call;
        call.timeout = absl::Seconds(120);
        absl::StatusOr<v1::ExplainResponse> response = client->Explain(request, call, &info);
        if (response.ok() && response->target().label() == kSampleLabel) ok.fetch_add(1);
        attempts.fetch_add(info.attempts);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ok.load(), kThreads * kCallsPerThread);
  EXPECT_GT(attempts.load(), kThreads * kCallsPerThread) << "no call was pushed back";

  // Every extra attempt was a RESOURCE_EXHAUSTED answer the server counted.
  absl::StatusOr<v1::StatsResponse> stats = client->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  int64_t exhausted = 0;
  for (const auto& rpc : stats->rpcs()) {
    if (rpc.rpc() != "Explain") continue;
    auto it = rpc.errors_by_code().find("RESOURCE_EXHAUSTED");
    if (it != rpc.errors_by_code().end()) exhausted = it->second;
  }
  EXPECT_EQ(exhausted, attempts.load() - kThreads * kCallsPerThread);
}

// Certificates for the TLS test, made by openssl: a CA, a server certificate for
// localhost/127.0.0.1 and a client certificate, all signed by the CA.
std::string MakeCertificates() {
  const std::string dir = ::testing::TempDir() + "/client_test_tls_" + std::to_string(getpid());
  const std::string script = absl::StrCat(
      "set -e; mkdir -p ", dir, "; cd ", dir, "; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
      "-subj /CN=test-ca 2>/dev/null; ",
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext; ",
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost "
      "2>/dev/null; ",
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
      "-days 2 -extfile san.ext 2>/dev/null; ",
      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client "
      "2>/dev/null; ",
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem "
      "-days 2 2>/dev/null");
  return RunCommand(script).exit_code == 0 ? dir : "";
}

TEST(ClientIntegrationTest, MutualTlsWithTheServersTlsFlags) {
  const std::string dir = MakeCertificates();
  ASSERT_FALSE(dir.empty()) << "openssl failed";
  auto server = ServerProcess::Start(
      kServer, ServerArgs({"--tls_cert=" + dir + "/server.pem", "--tls_key=" + dir + "/server.key",
                           "--tls_client_ca=" + dir + "/ca.pem"}));
  ASSERT_TRUE(server.ok()) << server.status();
  Options options;
  options.target = absl::StrCat("127.0.0.1:", (*server)->port());  // IP SAN: no /etc/hosts lookup
  options.tls.enabled = true;
  options.tls.root_ca_file = dir + "/ca.pem";
  options.tls.cert_chain_file = dir + "/client.pem";
  options.tls.private_key_file = dir + "/client.key";
  options.retry.max_attempts = 1000;  // until the server is warm; bounded by the deadline
  options.retry.max_backoff = absl::Milliseconds(300);
  auto client = MakeClient(options);
  CallOptions call;
  call.timeout = absl::Seconds(90);
  absl::StatusOr<v1::PredictResponse> response = client->Predict(SampleRequest(), call);
  ASSERT_TRUE(response.ok()) << response.status() << "\n" << (*server)->Log();
  EXPECT_EQ(response->predictions(0).label(), kSampleLabel);

  // Without a client certificate, or plaintext, the handshake fails: UNAVAILABLE.
  Options no_cert = options;
  no_cert.tls.cert_chain_file.clear();
  no_cert.tls.private_key_file.clear();
  no_cert.retry.max_attempts = 1;
  EXPECT_EQ(MakeClient(no_cert)->Predict(SampleRequest()).status().code(),
            absl::StatusCode::kUnavailable);
  Options plaintext = no_cert;
  plaintext.tls = {};
  EXPECT_EQ(MakeClient(plaintext)->Predict(SampleRequest()).status().code(),
            absl::StatusCode::kUnavailable);

  // The CLI with the same files.
  CommandResult cli = RunCommand(
      absl::StrCat(kCli, " predict ", kSamples, "/", kSample, " --target=", options.target,
                   " --tls_ca=", dir, "/ca.pem --tls_cert=", dir, "/client.pem --tls_key=", dir,
                   "/client.key"),
      /*merge_stderr=*/true);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr(kSampleLabel));
  CommandResult refused = RunCommand(
      absl::StrCat(kCli, " predict ", kSamples, "/", kSample, " --target=", options.target,
                   " --max_attempts=1 --tls_ca=", dir, "/ca.pem"),
      /*merge_stderr=*/true);
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.output, HasSubstr("UNAVAILABLE"));
  RunCommand("rm -rf " + dir);
}

TEST(ClientIntegrationTest, DnsRoundRobinSpreadsCallsOverEveryResolvedServer) {
  // Two servers on one port of two loopback addresses; one name resolves to both.
  auto first = ServerProcess::Start(kServer, ServerArgs(), "127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  auto second = ServerProcess::Start(kServer, ServerArgs(), absl::StrCat("127.0.0.2:", port));
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE((*first)->WaitServing(std::chrono::seconds(60)).ok());
  ASSERT_TRUE((*second)->WaitServing(std::chrono::seconds(60)).ok());
  DnsResponder dns({"127.0.0.1", "127.0.0.2"});

  Options options;
  options.target = absl::StrCat("dns://127.0.0.1:", dns.port(), "/cropshield.test:", port);
  ASSERT_EQ(client::EffectiveLbPolicy(options), "round_robin");
  auto client = MakeClient(options);
  const v1::PredictRequest request = SampleRequest();
  std::map<std::string, int> peers;
  constexpr int kCalls = 24;
  for (int i = 0; i < kCalls; ++i) {
    CallInfo info;
    absl::StatusOr<v1::PredictResponse> response = client->Predict(request, {}, &info);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(response->predictions(0).label(), kSampleLabel);
    ++peers[info.peer];
  }
  EXPECT_GT(dns.a_queries(), 0);
  ASSERT_EQ(peers.size(), 2u) << ::testing::PrintToString(peers);

  // Each server's own Stats confirm it took a share of the calls.
  Options direct;
  direct.target = (*first)->address();
  absl::StatusOr<v1::StatsResponse> first_stats = MakeClient(direct)->Stats();
  direct.target = (*second)->address();
  absl::StatusOr<v1::StatsResponse> second_stats = MakeClient(direct)->Stats();
  ASSERT_TRUE(first_stats.ok() && second_stats.ok());
  const int64_t a = PredictCalls(*first_stats), b = PredictCalls(*second_stats);
  EXPECT_EQ(a + b, kCalls);
  EXPECT_GE(a, kCalls / 4) << "first " << a << ", second " << b;
  EXPECT_GE(b, kCalls / 4) << "first " << a << ", second " << b;

  // The CLI takes the same target (round_robin by default for dns: targets).
  CommandResult cli = RunCommand(absl::StrCat(kCli, " predict ", kSamples, "/", kSample, " ",
                                              kSamples, "/", kSample, " --target=", options.target),
                                 /*merge_stderr=*/true);
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_THAT(cli.output, HasSubstr(kSampleLabel));
}

TEST(ClientIntegrationTest, MaxConnectionAgeLetsRoundRobinClientsReachAReplicaAddedLater) {
  // Scale-out behind a headless Service: a client resolved the name when one replica existed; a
  // second replica is added to the name later. gRPC re-resolves only when a connection ends, so
  // the servers' --max_connection_age_ms is what brings the client to the new replica.
  const std::vector<std::string> aged = {"--max_connection_age_ms=1000",
                                         "--max_connection_age_grace_ms=5000"};
  auto first = ServerProcess::Start(kServer, ServerArgs(aged), "127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  const int port = (*first)->port();
  ASSERT_TRUE((*first)->WaitServing(std::chrono::seconds(60)).ok());
  DnsResponder dns({"127.0.0.1"});

  Options options;
  options.target = absl::StrCat("dns://127.0.0.1:", dns.port(), "/cropshield.test:", port);
  // gRPC waits 30 s between resolutions by default; a test cannot.
  options.int_channel_args["grpc.dns_min_time_between_resolutions_ms"] = 200;
  auto client = MakeClient(options);
  const v1::PredictRequest request = SampleRequest();
  std::map<std::string, int> peers;
  auto call = [&] {
    CallInfo info;
    absl::StatusOr<v1::PredictResponse> response = client->Predict(request, {}, &info);
    if (!response.ok()) return response.status();
    ++peers[info.peer];
    return absl::OkStatus();
  };
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(call().ok());
  ASSERT_EQ(peers.size(), 1u) << ::testing::PrintToString(peers);

  auto second = ServerProcess::Start(kServer, ServerArgs(aged), absl::StrCat("127.0.0.2:", port));
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE((*second)->WaitServing(std::chrono::seconds(60)).ok());
  dns.SetAddresses({"127.0.0.1", "127.0.0.2"});
  const int queries_before = dns.a_queries();

  // Every call must succeed while connections are aged out; within a few ages the new replica
  // must take calls.
  int calls = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (peers.size() < 2 && absl::Now() < deadline) {
    absl::Status status = call();
    ASSERT_TRUE(status.ok()) << "call " << calls << ": " << status;
    ++calls;
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_EQ(peers.size(), 2u) << "after " << calls << " calls: " << ::testing::PrintToString(peers);
  EXPECT_GT(dns.a_queries(), queries_before);
  Options direct;
  direct.target = (*second)->address();
  absl::StatusOr<v1::StatsResponse> second_stats = MakeClient(direct)->Stats();
  ASSERT_TRUE(second_stats.ok()) << second_stats.status();
  EXPECT_GE(PredictCalls(*second_stats), 1);
}

}  // namespace
}  // namespace cropshield
