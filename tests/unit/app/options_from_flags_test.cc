#include "server/app/options_from_flags.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, precision);
ABSL_DECLARE_FLAG(std::string, model_name);
ABSL_DECLARE_FLAG(int64_t, model_version);
ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(int, threads);
ABSL_DECLARE_FLAG(int, workers);
ABSL_DECLARE_FLAG(int, batch_threads);
ABSL_DECLARE_FLAG(int, max_batch_size);
ABSL_DECLARE_FLAG(int, explain_max_batch_size);
ABSL_DECLARE_FLAG(int64_t, max_inflight_calls);
ABSL_DECLARE_FLAG(int, max_response_send_ms);
ABSL_DECLARE_FLAG(int, queue_capacity);
ABSL_DECLARE_FLAG(int64_t, grpc_memory_quota_bytes);
ABSL_DECLARE_FLAG(int, max_connection_idle_ms);
ABSL_DECLARE_FLAG(int64_t, explain_max_output_pixels);
ABSL_DECLARE_FLAG(int64_t, max_queue_delay_us);
ABSL_DECLARE_FLAG(int, cache_ttl_s);
ABSL_DECLARE_FLAG(int64_t, retry_pushback_ms);
ABSL_DECLARE_FLAG(int, max_concurrent_streams);
ABSL_DECLARE_FLAG(int, max_connection_age_ms);
ABSL_DECLARE_FLAG(int, max_connection_age_grace_ms);
ABSL_DECLARE_FLAG(int, release_memory_idle_ms);
ABSL_DECLARE_FLAG(int, model_poll_interval_s);
ABSL_DECLARE_FLAG(int, warmup_iterations);
ABSL_DECLARE_FLAG(int, drain_delay_ms);
ABSL_DECLARE_FLAG(int, shutdown_grace_ms);
ABSL_DECLARE_FLAG(std::string, admin_token_file);
ABSL_DECLARE_FLAG(bool, admin_trust_loopback);
ABSL_DECLARE_FLAG(std::vector<std::string>, admin_client_identities);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_client_ca);

namespace cropshield::app {
namespace {

HostFacts Host(int cores, bool cuda, const char* admin_token_env = nullptr) {
  HostFacts host;
  host.cores = cores;
  host.cuda = cuda;
  host.admin_token_env = admin_token_env;
  return host;
}

const HostFacts kCpu4 = Host(4, false);
const HostFacts kCuda8 = Host(8, true);
constexpr char kPem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

std::string WriteTempFile(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "/options_from_flags_test_" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

// Every test runs with the flags' defaults and gets them back afterwards.
class OptionsFromFlagsTest : public ::testing::Test {
 protected:
  ServeOptions Options(const HostFacts& host) {
    absl::StatusOr<ServeOptions> options = OptionsFromFlags(host);
    EXPECT_TRUE(options.ok()) << options.status();
    return options.ok() ? *std::move(options) : ServeOptions();
  }

  absl::FlagSaver saver_;
};

TEST_F(OptionsFromFlagsTest, DefaultsOnCpu) {
  const ServeOptions o = Options(kCpu4);
  const ServerOptions& s = o.server;
  EXPECT_EQ(s.address, "0.0.0.0:50051");
  EXPECT_EQ(s.metrics_address, "0.0.0.0:9464");
  EXPECT_EQ(s.max_message_bytes, 16 << 20);
  EXPECT_EQ(s.max_send_message_bytes, 64 << 20);
  EXPECT_EQ(s.grpc_memory_quota_bytes, 256 << 20);
  EXPECT_EQ(s.max_connection_idle, absl::Milliseconds(300000));
  EXPECT_EQ(s.max_concurrent_streams, 256);
  EXPECT_EQ(s.max_connection_age, absl::ZeroDuration());
  EXPECT_EQ(s.max_connection_age_grace, absl::Seconds(10));
  EXPECT_EQ(s.service.max_response_send_time, absl::Seconds(30));
  EXPECT_EQ(s.release_memory_after_idle, absl::Seconds(1));
  EXPECT_EQ(s.core.workers, 1);
  EXPECT_EQ(o.threads, 4);
  EXPECT_EQ(s.core.predict_batch_threads, 1);
  EXPECT_EQ(s.core.queue_capacity, 256u);
  EXPECT_EQ(s.core.limits.max_image_bytes, 10 << 20);
  EXPECT_EQ(s.core.limits.max_image_pixels, 40'000'000);
  EXPECT_EQ(s.core.limits.explain_max_output_pixels, 2048 * 2048);
  EXPECT_EQ(s.core.max_inflight_request_bytes, 256 << 20);
  EXPECT_EQ(s.core.explain_render_budget_bytes, 512 << 20);
  EXPECT_EQ(s.core.max_batch_size, 8);
  EXPECT_EQ(s.core.explain_max_batch_size, 8);
  EXPECT_EQ(s.core.max_queue_delay_us, 0);
  EXPECT_EQ(s.core.explain_cache_bytes, 128 << 20);
  EXPECT_EQ(s.core.predict_cache_bytes, 0);
  EXPECT_EQ(s.core.cache_shards, 16);
  EXPECT_EQ(s.core.cache_ttl, absl::ZeroDuration());
  EXPECT_EQ(s.core.max_inflight_calls, 1024);
  EXPECT_EQ(s.core.retry_pushback_ms, 100);
  EXPECT_EQ(s.core.admin.token, "");
  EXPECT_FALSE(s.core.admin.trust_loopback);
  EXPECT_TRUE(s.core.admin.client_identities.empty());
  EXPECT_EQ(s.tls_cert_pem, "");
  EXPECT_EQ(s.tls_key_pem, "");
  EXPECT_EQ(s.tls_client_ca_pem, "");
  EXPECT_EQ(o.malloc_arenas, 0);
  EXPECT_EQ(o.model_version, 0);
  EXPECT_EQ(o.port_file, "");
  EXPECT_EQ(o.drain_delay_ms, 0);
  EXPECT_EQ(o.shutdown_grace_ms, 10000);
}

TEST_F(OptionsFromFlagsTest, DefaultModelOptions) {
  const core::ModelManagerOptions models = Options(kCpu4).server.core.models;
  EXPECT_TRUE(absl::EndsWith(models.model_path, "models/repository")) << models.model_path;
  EXPECT_EQ(models.model_name, "");
  EXPECT_EQ(models.poll_interval, absl::ZeroDuration());
  EXPECT_EQ(models.load_options.device, "auto");
  EXPECT_EQ(models.load_options.precision, "fp32");
  EXPECT_TRUE(models.load_options.optimize);
  EXPECT_TRUE(models.load_options.channels_last);
  EXPECT_TRUE(models.load_options.cuda_graphs);
  EXPECT_EQ(models.load_options.warmup_iterations, 3);
  EXPECT_EQ(models.load_options.max_batch_size, 8);
}

TEST_F(OptionsFromFlagsTest, CudaDefaultsUseAllCoresButOneForWorkersAndTwoBatchThreads) {
  const ServeOptions o = Options(kCuda8);
  EXPECT_EQ(o.server.core.workers, 7);
  EXPECT_EQ(o.threads, 1);  // 8 cores / 7 workers
  EXPECT_EQ(o.server.core.predict_batch_threads, 2);
}

TEST_F(OptionsFromFlagsTest, CudaOnOneCoreStillHasOneWorker) {
  const ServeOptions o = Options(Host(1, true));
  EXPECT_EQ(o.server.core.workers, 1);
  EXPECT_EQ(o.threads, 1);
}

TEST_F(OptionsFromFlagsTest, ExplicitWorkersThreadsAndBatchThreadsWin) {
  absl::SetFlag(&FLAGS_workers, 3);
  absl::SetFlag(&FLAGS_batch_threads, 4);
  ServeOptions o = Options(kCuda8);
  EXPECT_EQ(o.server.core.workers, 3);
  EXPECT_EQ(o.threads, 2);  // 8 cores / 3 workers
  EXPECT_EQ(o.server.core.predict_batch_threads, 4);
  absl::SetFlag(&FLAGS_threads, 5);
  o = Options(kCuda8);
  EXPECT_EQ(o.threads, 5);
  absl::SetFlag(&FLAGS_workers, 16);  // more workers than cores: one torch thread
  absl::SetFlag(&FLAGS_threads, 0);
  EXPECT_EQ(Options(kCpu4).threads, 1);
}

TEST_F(OptionsFromFlagsTest, ClampsValuesBelowTheirMinimum) {
  absl::SetFlag(&FLAGS_max_batch_size, 0);
  absl::SetFlag(&FLAGS_explain_max_batch_size, -2);
  absl::SetFlag(&FLAGS_max_inflight_calls, -5);
  absl::SetFlag(&FLAGS_max_response_send_ms, 0);
  absl::SetFlag(&FLAGS_queue_capacity, 0);
  absl::SetFlag(&FLAGS_grpc_memory_quota_bytes, -1);
  absl::SetFlag(&FLAGS_explain_max_output_pixels, 0);
  absl::SetFlag(&FLAGS_max_queue_delay_us, -1);
  absl::SetFlag(&FLAGS_retry_pushback_ms, 0);
  absl::SetFlag(&FLAGS_max_concurrent_streams, -1);
  const ServeOptions o = Options(kCpu4);
  EXPECT_EQ(o.server.core.max_batch_size, 1);
  EXPECT_EQ(o.server.core.explain_max_batch_size, 1);
  EXPECT_EQ(o.server.core.models.load_options.max_batch_size, 1);
  EXPECT_EQ(o.server.core.max_inflight_calls, 0);
  EXPECT_EQ(o.server.service.max_response_send_time, absl::Milliseconds(1));
  EXPECT_EQ(o.server.core.queue_capacity, 1u);
  EXPECT_EQ(o.server.grpc_memory_quota_bytes, 0);
  EXPECT_EQ(o.server.core.limits.explain_max_output_pixels, 1);
  EXPECT_EQ(o.server.core.max_queue_delay_us, 0);
  EXPECT_EQ(o.server.core.retry_pushback_ms, 1);
  EXPECT_EQ(o.server.max_concurrent_streams, 0);
}

TEST_F(OptionsFromFlagsTest, ClampsNegativeDurationsToZero) {
  absl::SetFlag(&FLAGS_max_connection_idle_ms, -1);
  absl::SetFlag(&FLAGS_max_connection_age_ms, -1);
  absl::SetFlag(&FLAGS_max_connection_age_grace_ms, -1);
  absl::SetFlag(&FLAGS_release_memory_idle_ms, -1);
  absl::SetFlag(&FLAGS_cache_ttl_s, -1);
  absl::SetFlag(&FLAGS_model_poll_interval_s, -1);
  absl::SetFlag(&FLAGS_drain_delay_ms, -5);
  absl::SetFlag(&FLAGS_warmup_iterations, 0);
  const ServeOptions o = Options(kCpu4);
  EXPECT_EQ(o.server.max_connection_idle, absl::ZeroDuration());
  EXPECT_EQ(o.server.max_connection_age, absl::ZeroDuration());
  EXPECT_EQ(o.server.max_connection_age_grace, absl::ZeroDuration());
  EXPECT_EQ(o.server.release_memory_after_idle, absl::ZeroDuration());
  EXPECT_EQ(o.server.core.cache_ttl, absl::ZeroDuration());
  EXPECT_EQ(o.server.core.models.poll_interval, absl::ZeroDuration());
  EXPECT_EQ(o.drain_delay_ms, 0);
  EXPECT_EQ(o.server.core.models.load_options.warmup_iterations, 1);
}

TEST_F(OptionsFromFlagsTest, FillsModelOptionsWarmingTheLargerBatchSize) {
  absl::SetFlag(&FLAGS_device, "cuda:1");
  absl::SetFlag(&FLAGS_precision, "fp16");
  absl::SetFlag(&FLAGS_model_name, "leaf");
  absl::SetFlag(&FLAGS_model_version, 7);
  absl::SetFlag(&FLAGS_max_batch_size, 4);
  absl::SetFlag(&FLAGS_explain_max_batch_size, 16);
  absl::SetFlag(&FLAGS_model_poll_interval_s, 30);
  absl::SetFlag(&FLAGS_port_file, "/tmp/port");
  absl::SetFlag(&FLAGS_shutdown_grace_ms, 2500);
  const ServeOptions o = Options(kCuda8);
  const core::ModelManagerOptions& models = o.server.core.models;
  EXPECT_EQ(models.load_options.device, "cuda:1");
  EXPECT_EQ(models.load_options.precision, "fp16");
  EXPECT_EQ(models.model_name, "leaf");
  EXPECT_EQ(models.load_options.max_batch_size, 16);
  EXPECT_EQ(o.server.core.max_batch_size, 4);
  EXPECT_EQ(models.poll_interval, absl::Seconds(30));
  EXPECT_EQ(o.model_version, 7);
  EXPECT_EQ(o.port_file, "/tmp/port");
  EXPECT_EQ(o.shutdown_grace_ms, 2500);
}

TEST_F(OptionsFromFlagsTest, ReadsTheAdminTokenFromTheFileOrTheEnvironment) {
  absl::SetFlag(&FLAGS_admin_trust_loopback, true);
  EXPECT_EQ(Options(Host(1, false, "from-env")).server.core.admin.token, "from-env");
  absl::SetFlag(&FLAGS_admin_token_file, WriteTempFile("token", "s3cret \n"));
  const ServeOptions o = Options(Host(1, false, "from-env"));
  EXPECT_EQ(o.server.core.admin.token, "s3cret");
  EXPECT_TRUE(o.server.core.admin.trust_loopback);
}

TEST_F(OptionsFromFlagsTest, EmptyAdminTokenIsAnError) {
  absl::SetFlag(&FLAGS_admin_token_file, WriteTempFile("empty_token", ""));
  absl::StatusOr<ServeOptions> o = OptionsFromFlags(kCpu4);
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(o.status().message(), "holds an empty admin token")) << o.status();
  absl::SetFlag(&FLAGS_admin_token_file, "");
  EXPECT_EQ(OptionsFromFlags(Host(1, false, " ")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(OptionsFromFlagsTest, MissingOrNonPemTlsFileIsAnError) {
  const std::string missing = ::testing::TempDir() + "/options_from_flags_test_no_such.pem";
  absl::SetFlag(&FLAGS_tls_cert, missing);
  absl::StatusOr<ServeOptions> o = OptionsFromFlags(kCpu4);
  EXPECT_EQ(o.status(), absl::NotFoundError("--tls_cert: cannot open " + missing));
  absl::SetFlag(&FLAGS_tls_cert, "");
  const std::string not_pem = WriteTempFile("key.txt", "not a key");
  absl::SetFlag(&FLAGS_tls_key, not_pem);
  o = OptionsFromFlags(kCpu4);
  EXPECT_EQ(o.status(), absl::InvalidArgumentError("--tls_key: " + not_pem + " is not PEM"));
}

TEST_F(OptionsFromFlagsTest, ReadsTlsFilesContents) {
  absl::SetFlag(&FLAGS_tls_cert, WriteTempFile("cert.pem", kPem));
  absl::SetFlag(&FLAGS_tls_key, WriteTempFile("key.pem", kPem));
  absl::SetFlag(&FLAGS_tls_client_ca, WriteTempFile("ca.pem", kPem));
  absl::SetFlag(&FLAGS_admin_client_identities, std::vector<std::string>{"ops", "ci"});
  const ServeOptions o = Options(kCpu4);
  EXPECT_EQ(o.server.tls_cert_pem, kPem);
  EXPECT_EQ(o.server.tls_key_pem, kPem);
  EXPECT_EQ(o.server.tls_client_ca_pem, kPem);
  EXPECT_EQ(o.server.core.admin.client_identities, (std::vector<std::string>{"ops", "ci"}));
}

TEST_F(OptionsFromFlagsTest, AdminClientIdentitiesNeedAClientCa) {
  absl::SetFlag(&FLAGS_admin_client_identities, std::vector<std::string>{"ops"});
  EXPECT_EQ(
      OptionsFromFlags(kCpu4).status(),
      absl::InvalidArgumentError("--admin_client_identities needs mutual TLS (--tls_client_ca)"));
}

TEST_F(OptionsFromFlagsTest, EmptyModelPathIsAnError) {
  absl::SetFlag(&FLAGS_model, "");
  EXPECT_EQ(
      OptionsFromFlags(kCpu4).status(),
      absl::InvalidArgumentError("--model must name a repository, model or version directory"));
}

TEST(IsServerFlagsFileTest, MatchesTheFlagsFileAndMain) {
  EXPECT_TRUE(IsServerFlagsFile("/src/cropshield/server/app/options_from_flags.cc"));
  EXPECT_TRUE(IsServerFlagsFile("/src/cropshield/server/main.cc"));
  EXPECT_FALSE(IsServerFlagsFile("/src/cropshield/client/main.cc"));
  EXPECT_FALSE(IsServerFlagsFile("absl/flags/parse.cc"));
}

}  // namespace
}  // namespace cropshield::app
