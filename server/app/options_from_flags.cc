// cropshield-server's flags and their translation into ServeOptions.
#include "server/app/options_from_flags.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "server/core/admin_auth.h"
#include "server/engine/model.h"

#ifndef CROPSHIELD_DEFAULT_MODEL
#define CROPSHIELD_DEFAULT_MODEL "models/repository"
#endif

ABSL_FLAG(
    std::string, model, CROPSHIELD_DEFAULT_MODEL,
    "Model package: a version directory (holding model.json), a model directory (holding "
    "integer version directories; the highest is served) or a repository of model directories.");
ABSL_FLAG(std::string, model_name, "", "Model to serve from a repository with several models.");
ABSL_FLAG(int64_t, model_version, 0, "Model version to serve; 0 serves the highest version.");
ABSL_FLAG(std::string, address, "0.0.0.0:50051",
          "gRPC listen address host:port; port 0 picks a free port (see --port_file). If the "
          "address cannot be bound (e.g. another server uses the port), the server exits with "
          "status 1.");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0:9464",
          "HTTP address of the Prometheus endpoint (GET /metrics, /healthz); port 0 picks a free "
          "port, logged as 'metrics listening on port N'; empty disables it. If the address cannot "
          "be bound (in use), the server exits with status 1.");
ABSL_FLAG(std::string, http_address, "0.0.0.0:8000",
          "HTTP/REST address: the Open Inference Protocol's REST endpoints (/v2/...), "
          "/v1/predict, /v1/explain, /v1/cache:clear, /v1/stats and the web page at /; port 0 "
          "picks a free port, logged as 'http listening on port N'; empty disables it. With "
          "--tls_cert it serves HTTPS with that certificate (--tls_client_ca: mutual TLS).");
ABSL_FLAG(bool, http_plaintext_with_tls, false,
          "Serve --http_address in plaintext even though gRPC serves TLS (e.g. behind a proxy "
          "that terminates TLS, or for kubelet httpGet probes).");
ABSL_FLAG(int, http_threads, 8,
          "HTTP calls served at once (each waits for its answer on its thread); more wait in a "
          "queue of 256, then get 503.");
ABSL_FLAG(int64_t, http_max_body_bytes, 0,
          "Largest HTTP request body (larger: 413 before reading it); 0 = --max_image_bytes plus "
          "1 MiB, at least 16 MiB (an infer request with several photos, base64 included).");
ABSL_FLAG(int, http_body_timeout_ms, 30000,
          "Time a client has to send an HTTP request body after its headers (then 408).");
ABSL_FLAG(int, http_request_timeout_ms, 60000,
          "Longest an HTTP call may take (then 504); a caller may ask for less with the header "
          "Request-Timeout-Ms.");
ABSL_FLAG(std::string, port_file, "",
          "If set, the bound port is written to this file once the server is SERVING.");
ABSL_FLAG(std::string, device, "auto",
          "Inference device: auto (CUDA if present), cpu, cuda, cuda:N.");
ABSL_FLAG(std::string, precision, "fp32",
          "Serving precision: fp32, or on CUDA fp16 / bf16 (checked against fp32 at start: the "
          "top-1 class must agree on the warm-up inputs).");
ABSL_FLAG(bool, channels_last, true, "On CUDA, run convolutions in channels_last memory format.");
ABSL_FLAG(bool, cuda_graphs, true,
          "On CUDA, replay Predict's forward from a CUDA graph per warmed batch size, each checked "
          "against the eager forward at load (falls back to eager, with a log line, if not).");
ABSL_FLAG(int, threads, 0,
          "Torch intra-op threads per forward; 0 = number of CPU cores divided by --workers.");
ABSL_FLAG(int, malloc_arenas, 0,
          "glibc malloc arenas (freed memory stays in its arena); 0 = one per CPU core. More "
          "arenas cut allocator lock contention and cost resident memory.");
ABSL_FLAG(int, workers, 0,
          "Worker threads that decode, preprocess and render heatmaps (inference runs on the "
          "batcher threads); 0 = all CPU cores but one when the model runs on CUDA (decoding is "
          "then the host's whole job), 1 on CPU (the torch threads use the cores).");
ABSL_FLAG(int, release_memory_idle_ms, 1000,
          "Once SERVING, after this many ms with no new call or model load and none in progress, "
          "hand the heap's free memory back to the OS (malloc_trim; the next forward faults its "
          "pages in again); 0 = keep it.");
ABSL_FLAG(int, queue_capacity, 256,
          "Requests that may wait for a worker; more get RESOURCE_EXHAUSTED at once.");
ABSL_FLAG(int64_t, max_image_bytes, 10 << 20,
          "Largest encoded image accepted, in bytes; larger gets INVALID_ARGUMENT.");
ABSL_FLAG(int64_t, max_image_pixels, 40'000'000,
          "Largest decoded image (width x height from the header, checked before decoding).");
ABSL_FLAG(int64_t, max_message_bytes, 16 << 20,
          "Largest gRPC request message; larger gets RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, max_send_message_bytes, 64 << 20,
          "Largest gRPC response sent; a larger one fails with RESOURCE_EXHAUSTED.");
ABSL_FLAG(int64_t, explain_max_output_pixels, int64_t{2048} * 2048,
          "Explain's photo-sized outputs (image map, heatmap, overlay) are drawn at most this "
          "many pixels: larger photos get them downscaled with the aspect kept (the crop box "
          "scaled alike; crop_box in the response stays in photo coordinates).");
ABSL_FLAG(int64_t, max_inflight_request_bytes, 256 << 20,
          "Bytes of encoded images (plus model inputs) held by Predict/Explain calls at once; "
          "more get RESOURCE_EXHAUSTED at once. 0: unlimited.");
ABSL_FLAG(int64_t, explain_render_budget_bytes, 512 << 20,
          "Bytes of Explain render buffers and responses held at once (an upper estimate per "
          "call, from accept until the response is sent); more get RESOURCE_EXHAUSTED. 0: "
          "unlimited.");
ABSL_FLAG(int, max_response_send_ms, 30000,
          "A finished call whose response the client has not taken this long after it was ready "
          "is cancelled, releasing its memory (clients that never read).");
ABSL_FLAG(int64_t, grpc_memory_quota_bytes, 256 << 20,
          "Memory gRPC's transport may use for all connections together; 0: gRPC's default.");
ABSL_FLAG(int, max_connection_idle_ms, 300000,
          "Close client connections with no call in flight for this long; 0: never.");
ABSL_FLAG(int, max_batch_size, 8,
          "Predict requests classified in one forward pass at most (dynamic batching).");
ABSL_FLAG(int64_t, max_queue_delay_us, 0,
          "How long a Predict batch may wait for more requests after its first one; 0 takes "
          "whatever is queued and never waits (best on CPU; try 200-1000 on a GPU under load).");
ABSL_FLAG(int, batch_threads, 0,
          "Threads that each run one Predict batch at a time; 0 = 2 when the model runs on CUDA "
          "(one assembles and answers a batch while the other's forward runs), 1 on CPU.");
ABSL_FLAG(int, explain_max_batch_size, 8,
          "Pending Explain requests computed together in one batch (at most this many).");
ABSL_FLAG(int64_t, explain_cache_bytes, 128 << 20,
          "Byte budget of the explanation cache; 0 stores nothing (identical concurrent requests "
          "are still computed once).");
ABSL_FLAG(int64_t, predict_cache_bytes, 0,
          "Byte budget of the Predict response cache; 0 (default) disables it.");
ABSL_FLAG(int, cache_shards, 16, "Shards of each cache (each with its own lock).");
ABSL_FLAG(int, cache_ttl_s, 0, "Seconds a cache entry lives; 0 keeps entries until evicted.");
ABSL_FLAG(std::string, admin_token_file, "",
          "File holding the admin token for ClearCache and ReloadModel (authorization: Bearer "
          "<token>). The environment variable CROPSHIELD_ADMIN_TOKEN is used when this is empty. "
          "An empty or whitespace-only token (file or variable) refuses to start. Without a "
          "token, --admin_client_identities or --admin_trust_loopback admin RPCs are refused.");
ABSL_FLAG(bool, admin_trust_loopback, false,
          "Admit admin RPCs from loopback peers without credentials (local development). Keep it "
          "off behind a service-mesh sidecar or kubectl port-forward: there every caller is "
          "loopback.");
ABSL_FLAG(std::vector<std::string>, admin_client_identities, {},
          "Comma-separated client certificate identities (subject CN or a subject alternative "
          "name) admitted to admin RPCs over mutual TLS (needs --tls_client_ca).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM server certificate (chain) file; with --tls_key the gRPC port serves TLS only.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key file of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle; when set, clients must present a certificate it signed (mutual TLS).");
ABSL_FLAG(int64_t, max_inflight_calls, 1024,
          "Predict/Explain calls accepted at once; more get RESOURCE_EXHAUSTED at once. 0: no "
          "limit besides the queues.");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "Concurrent calls per client connection (HTTP/2 streams); 0 keeps gRPC's default.");
ABSL_FLAG(int, max_connection_age_ms, 0,
          "Close client connections older than this (GOAWAY; +-10% jitter) so that clients "
          "re-resolve DNS and reach replicas added since they connected (scale-out behind a "
          "headless Service); 0 never closes them.");
ABSL_FLAG(
    int, max_connection_age_grace_ms, 10000,
    "After such a GOAWAY, how long calls in flight on the old connection may take to finish.");
ABSL_FLAG(int64_t, retry_pushback_ms, 100,
          "Retry hint sent as grpc-retry-pushback-ms trailing metadata with RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, model_poll_interval_s, 0,
          "Seconds between looks at the model repository for a different highest version, which "
          "is then loaded, warmed up and swapped in; 0 disables the watch (ReloadModel still "
          "works).");
ABSL_FLAG(int, drain_delay_ms, 0,
          "On SIGINT/SIGTERM, how long to keep serving with health NOT_SERVING (so that load "
          "balancers move away) before new calls are refused; then --shutdown_grace_ms applies.");
ABSL_FLAG(bool, optimize, true,
          "Freeze + optimize_for_inference at load (kept only if outputs agree within 1e-4).");
ABSL_FLAG(int, warmup_iterations, 3,
          "Warm-up forward passes per batch size before the server reports SERVING.");
ABSL_FLAG(int, shutdown_grace_ms, 10000,
          "On SIGINT/SIGTERM, how long accepted calls may take to finish before being cancelled.");

namespace cropshield::app {
namespace {

absl::Duration ClampedMs(int ms) { return absl::Milliseconds(std::max(0, ms)); }

// --workers and --threads, 0 resolved: on CUDA decoding is the host's whole job (all cores but
// one); on CPU one worker leaves the cores to torch's intra-op threads.
void ResolveThreads(const HostFacts& host, ServeOptions* out) {
  int workers = absl::GetFlag(FLAGS_workers);
  if (workers <= 0) workers = host.cuda ? std::max(1, host.cores - 1) : 1;
  int threads = absl::GetFlag(FLAGS_threads);
  if (threads <= 0) threads = std::max(1, host.cores / workers);
  out->server.core.workers = workers;
  out->threads = threads;
  out->malloc_arenas = absl::GetFlag(FLAGS_malloc_arenas);
}

// The gRPC transport and the metrics endpoint.
void SetTransport(ServerOptions* options) {
  options->address = absl::GetFlag(FLAGS_address);
  options->max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  options->max_send_message_bytes = absl::GetFlag(FLAGS_max_send_message_bytes);
  options->grpc_memory_quota_bytes =
      std::max<int64_t>(0, absl::GetFlag(FLAGS_grpc_memory_quota_bytes));
  options->max_connection_idle = ClampedMs(absl::GetFlag(FLAGS_max_connection_idle_ms));
  options->max_concurrent_streams = std::max(0, absl::GetFlag(FLAGS_max_concurrent_streams));
  options->max_connection_age = ClampedMs(absl::GetFlag(FLAGS_max_connection_age_ms));
  options->max_connection_age_grace = ClampedMs(absl::GetFlag(FLAGS_max_connection_age_grace_ms));
  options->service.max_response_send_time =
      absl::Milliseconds(std::max(1, absl::GetFlag(FLAGS_max_response_send_ms)));
  options->metrics_address = absl::GetFlag(FLAGS_metrics_address);
  options->http.address = absl::GetFlag(FLAGS_http_address);
  options->http_plaintext_with_tls = absl::GetFlag(FLAGS_http_plaintext_with_tls);
  options->http.threads = std::max(1, absl::GetFlag(FLAGS_http_threads));
  const int64_t body = absl::GetFlag(FLAGS_http_max_body_bytes);
  options->http.max_body_bytes = static_cast<size_t>(
      body > 0 ? body
               : std::max<int64_t>(16 << 20, absl::GetFlag(FLAGS_max_image_bytes) + (1 << 20)));
  options->http.body_timeout =
      absl::Milliseconds(std::max(1, absl::GetFlag(FLAGS_http_body_timeout_ms)));
  options->http.rest.request_timeout =
      absl::Milliseconds(std::max(1, absl::GetFlag(FLAGS_http_request_timeout_ms)));
  options->release_memory_after_idle = ClampedMs(absl::GetFlag(FLAGS_release_memory_idle_ms));
}

// Request limits, memory budgets and admission.
void SetLimits(core::CoreOptions* core) {
  core->limits.max_image_bytes = absl::GetFlag(FLAGS_max_image_bytes);
  core->limits.max_image_pixels = absl::GetFlag(FLAGS_max_image_pixels);
  core->limits.explain_max_output_pixels =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_explain_max_output_pixels));
  core->max_inflight_request_bytes = absl::GetFlag(FLAGS_max_inflight_request_bytes);
  core->explain_render_budget_bytes = absl::GetFlag(FLAGS_explain_render_budget_bytes);
  core->queue_capacity = static_cast<size_t>(std::max(1, absl::GetFlag(FLAGS_queue_capacity)));
  core->max_inflight_calls = std::max<int64_t>(0, absl::GetFlag(FLAGS_max_inflight_calls));
  core->retry_pushback_ms = std::max<int64_t>(1, absl::GetFlag(FLAGS_retry_pushback_ms));
}

// Batching (--batch_threads 0: 2 on CUDA, where one assembles and answers a batch while the
// other's forward runs; 1 on CPU) and the caches.
void SetBatchingAndCaches(bool cuda, core::CoreOptions* core) {
  core->max_batch_size = std::max(1, absl::GetFlag(FLAGS_max_batch_size));
  core->explain_max_batch_size = std::max(1, absl::GetFlag(FLAGS_explain_max_batch_size));
  core->max_queue_delay_us = std::max<int64_t>(0, absl::GetFlag(FLAGS_max_queue_delay_us));
  core->predict_batch_threads = absl::GetFlag(FLAGS_batch_threads);
  if (core->predict_batch_threads <= 0) core->predict_batch_threads = cuda ? 2 : 1;
  core->explain_cache_bytes = absl::GetFlag(FLAGS_explain_cache_bytes);
  core->predict_cache_bytes = absl::GetFlag(FLAGS_predict_cache_bytes);
  core->cache_shards = absl::GetFlag(FLAGS_cache_shards);
  core->cache_ttl = absl::Seconds(std::max(0, absl::GetFlag(FLAGS_cache_ttl_s)));
}

// The package, its loading (warmed up to the larger of the two batch sizes) and the watch; after
// SetBatchingAndCaches.
absl::Status SetModels(core::CoreOptions* core) {
  core::ModelManagerOptions& models = core->models;
  models.model_path = absl::GetFlag(FLAGS_model);
  if (models.model_path.empty()) {
    return absl::InvalidArgumentError("--model must name a repository, model or version directory");
  }
  models.model_name = absl::GetFlag(FLAGS_model_name);
  models.poll_interval = absl::Seconds(std::max(0, absl::GetFlag(FLAGS_model_poll_interval_s)));
  models.load_options.device = absl::GetFlag(FLAGS_device);
  models.load_options.optimize = absl::GetFlag(FLAGS_optimize);
  models.load_options.precision = absl::GetFlag(FLAGS_precision);
  models.load_options.channels_last = absl::GetFlag(FLAGS_channels_last);
  models.load_options.warmup_iterations = std::max(1, absl::GetFlag(FLAGS_warmup_iterations));
  models.load_options.cuda_graphs = absl::GetFlag(FLAGS_cuda_graphs);
  models.load_options.max_batch_size = std::max(core->max_batch_size, core->explain_max_batch_size);
  return absl::OkStatus();
}

// The token never appears in logs or flags' values shown by --help.
absl::Status SetAdmin(const char* token_env, core::AdminPolicy* admin) {
  CS_ASSIGN_OR_RETURN(admin->token,
                      core::ReadAdminToken(absl::GetFlag(FLAGS_admin_token_file), token_env));
  admin->trust_loopback = absl::GetFlag(FLAGS_admin_trust_loopback);
  admin->client_identities = absl::GetFlag(FLAGS_admin_client_identities);
  return absl::OkStatus();
}

// "" for an empty path.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const char* flag) {
  if (path.empty()) return std::string();
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("--", flag, ": cannot open ", path));
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (contents.find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " is not PEM"));
  }
  return contents;
}

// The TLS files' contents; after SetAdmin (mTLS identities need a client CA).
absl::Status SetTls(ServerOptions* options) {
  for (auto [target, path, flag] :
       {std::tuple{&options->tls_cert_pem, absl::GetFlag(FLAGS_tls_cert), "tls_cert"},
        std::tuple{&options->tls_key_pem, absl::GetFlag(FLAGS_tls_key), "tls_key"},
        std::tuple{&options->tls_client_ca_pem, absl::GetFlag(FLAGS_tls_client_ca),
                   "tls_client_ca"}}) {
    CS_ASSIGN_OR_RETURN(*target, ReadPemFile(path, flag));
  }
  if (!options->core.admin.client_identities.empty() && options->tls_client_ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "--admin_client_identities needs mutual TLS (--tls_client_ca)");
  }
  return absl::OkStatus();
}

}  // namespace

HostFacts DetectHost() {
  HostFacts host;
  host.cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  host.cuda = engine::DeviceIsCuda(absl::GetFlag(FLAGS_device));
  host.admin_token_env = std::getenv("CROPSHIELD_ADMIN_TOKEN");
  return host;
}

absl::StatusOr<ServeOptions> OptionsFromFlags(const HostFacts& host) {
  ServeOptions out;
  ResolveThreads(host, &out);
  SetTransport(&out.server);
  SetLimits(&out.server.core);
  SetBatchingAndCaches(host.cuda, &out.server.core);
  CS_RETURN_IF_ERROR(SetModels(&out.server.core));
  CS_RETURN_IF_ERROR(SetAdmin(host.admin_token_env, &out.server.core.admin));
  CS_RETURN_IF_ERROR(SetTls(&out.server));
  out.model_version = absl::GetFlag(FLAGS_model_version);
  out.port_file = absl::GetFlag(FLAGS_port_file);
  out.drain_delay_ms = std::max(0, absl::GetFlag(FLAGS_drain_delay_ms));
  out.shutdown_grace_ms = absl::GetFlag(FLAGS_shutdown_grace_ms);
  return out;
}

absl::StatusOr<ServeOptions> OptionsFromFlags() { return OptionsFromFlags(DetectHost()); }

bool IsServerFlagsFile(absl::string_view file) {
  return absl::StrContains(file, "server/app/options_from_flags.cc") ||
         absl::StrContains(file, "server/main.cc");
}

}  // namespace cropshield::app
