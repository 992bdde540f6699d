// cropshield: command-line client of CropShield Serve.
//   cropshield predict IMAGE... [--target host:port] [--top_k N] [--json] [--deadline_ms N]
//   cropshield explain IMAGE [--out heatmap.png] [--overlay overlay.png] [--class N|LABEL] ...
//   cropshield stats [--json]
//   cropshield clear-cache [--token T] [--model_version V]
//   cropshield reload-model [--token T] [--model_version V]
//   cropshield health [--target host:port] [--service NAME]
// Calls go through the client library (cropshield::client::Client): deadlines, retries on
// UNAVAILABLE, round_robin over every address of dns:/// targets, TLS.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/bench.h"
#include "cropshield/client/client.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"

ABSL_FLAG(std::string, target, "localhost:50051",
          "Server address: host:port, or any gRPC target such as dns:///host:port (every address "
          "the name resolves to is a backend) or ipv4:10.0.0.1:50051,10.0.0.2:50051.");
ABSL_FLAG(std::string, lb_policy, "",
          "Load balancing over the target's addresses: round_robin or pick_first (default: "
          "round_robin for dns:///, host:port and ipv4:/ipv6: targets).");
ABSL_FLAG(int, max_attempts, 3,
          "Attempts per call: UNAVAILABLE (and calls the server answers with a retry pushback) "
          "are retried with exponential backoff within the deadline; 1 disables retries.");
ABSL_FLAG(bool, tls, false, "Connect with TLS (implied by --tls_ca / --tls_cert).");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA certificates that sign the server's certificate (default: the "
          "system roots).");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate chain for mutual TLS (with --tls_key).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Check the server certificate against this name instead of the target's host.");
ABSL_FLAG(int, top_k, 3, "predict: number of ranked classes to show.");
ABSL_FLAG(bool, json, false, "Print responses as JSON (one object per line) instead of a table.");
ABSL_FLAG(int, deadline_ms, 30000,
          "Deadline of each call in milliseconds, retries included (reload-model: at least "
          "600000, loading and warming a model takes a while).");
ABSL_FLAG(std::string, service, "",
          "health: service name to ask about (empty: the server as a whole).");
ABSL_FLAG(std::string, out, "", "explain: write the PNG heatmap (photo size, RGBA) to this file.");
ABSL_FLAG(std::string, overlay, "",
          "explain: write the heatmap blended over the photo here (.jpg/.jpeg: JPEG, else PNG).");
ABSL_FLAG(std::string, raw, "",
          "explain: write the feature-resolution map as float32 (.npy with shape, else raw .bin).");
ABSL_FLAG(std::string, image_map, "",
          "explain: write the map resampled onto the photo (float32, .npy or raw .bin).");
ABSL_FLAG(std::string, class, "",
          "explain: class to explain, index or label (default: the top-1 prediction).");
ABSL_FLAG(std::string, method, "grad_cam",
          "explain: grad_cam, grad_cam_plus_plus, hires_cam or layer_cam.");
ABSL_FLAG(std::string, colormap, "jet", "explain: jet, turbo or viridis.");
ABSL_FLAG(double, alpha, 0.5, "explain: heatmap opacity in the overlay, (0, 1].");
ABSL_FLAG(bool, bypass_cache, false, "explain: recompute even if the server has it cached.");
ABSL_FLAG(std::string, token, "",
          "clear-cache, reload-model: admin token (default: environment variable "
          "CROPSHIELD_ADMIN_TOKEN).");
ABSL_FLAG(bool, allow_plaintext_token, false,
          "Send the admin token even over a plaintext channel to a target that is not loopback "
          "(anyone on the path can read it); without it such a call is refused with status 2.");
ABSL_FLAG(std::string, model_name, "", "Model to address (default: the server's default model).");
ABSL_FLAG(int64_t, model_version, 0,
          "Model version to address; clear-cache: clear only this version (0: all); "
          "reload-model: version to load (0: the highest in the repository).");

namespace {

constexpr char kUsage[] =
    "CropShield Serve command-line client.\n"
    "Usage:\n"
    "  cropshield predict IMAGE... [--target host:port] [--top_k N] [--json] [--deadline_ms N]\n"
    "  cropshield explain IMAGE [--out heatmap.png] [--overlay overlay.png|.jpg] [--class "
    "N|LABEL]\n"
    "                    [--method grad_cam|grad_cam_plus_plus|hires_cam|layer_cam] [--raw "
    "map.npy]\n"
    "                    [--image_map map.npy] [--colormap jet|turbo|viridis] [--alpha A] "
    "[--json]\n"
    "  cropshield stats [--json]\n"
    "  cropshield clear-cache [--token T] [--model_name NAME] [--model_version V]\n"
    "  cropshield reload-model [--token T] [--model_version V]\n"
    "  cropshield health [--target host:port] [--service NAME]\n"
    "  cropshield bench --images DIR|FILE [--rpc predict|explain] [--concurrency N]\n"
    "                   [--duration S | --requests N] [--warmup S] [--json FILE] "
    "[--bench_bypass_cache]\n"
    "Every command: [--target host:port|dns:///host:port] [--lb_policy round_robin|pick_first]\n"
    "  [--deadline_ms N] [--max_attempts N] [--tls] [--tls_ca ca.pem] [--tls_cert c.pem --tls_key "
    "k.pem]\n"
    "Exit status: 0 on success, 1 when a call fails (the gRPC status is printed), 2 on usage "
    "errors.";

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

int Fail(absl::string_view what, const grpc::Status& status) {
  std::cerr << "error: " << what << ": " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  return 1;
}

int Fail(absl::string_view what, const absl::Status& status) {
  std::cerr << "error: " << what << ": " << absl::StatusCodeToString(status.code()) << ": "
            << status.message() << "\n";
  return 1;
}

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
}

std::string AdminToken() {
  std::string token = absl::GetFlag(FLAGS_token);
  if (token.empty()) {
    if (const char* env = std::getenv("CROPSHIELD_ADMIN_TOKEN"); env != nullptr) token = env;
  }
  return token;
}

// The client library configured from the flags; exits with status 2 on bad flags.
// `connection` > 0 gives the client a private subchannel pool, hence its own connections. Only
// admin commands (`admin`) carry the token, so that a token in the environment never blocks or
// leaks from other commands.
std::unique_ptr<cropshield::client::Client> MakeClient(
    absl::Duration min_timeout = absl::ZeroDuration(), int connection = 0, bool admin = false) {
  cropshield::client::Options options;
  if (connection > 0) options.int_channel_args[GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL] = 1;
  options.target = absl::GetFlag(FLAGS_target);
  options.lb_policy = absl::GetFlag(FLAGS_lb_policy);
  options.default_timeout =
      std::max(absl::Milliseconds(absl::GetFlag(FLAGS_deadline_ms)), min_timeout);
  options.retry.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  options.tls.root_ca_file = absl::GetFlag(FLAGS_tls_ca);
  options.tls.cert_chain_file = absl::GetFlag(FLAGS_tls_cert);
  options.tls.private_key_file = absl::GetFlag(FLAGS_tls_key);
  options.tls.server_name_override = absl::GetFlag(FLAGS_tls_server_name);
  options.tls.enabled = absl::GetFlag(FLAGS_tls) || !options.tls.root_ca_file.empty() ||
                        !options.tls.cert_chain_file.empty();
  if (admin) options.admin_token = AdminToken();
  options.allow_plaintext_token = absl::GetFlag(FLAGS_allow_plaintext_token);
  absl::StatusOr<std::unique_ptr<cropshield::client::Client>> client =
      cropshield::client::Client::Create(std::move(options));
  if (!client.ok()) {
    std::cerr << "error: " << client.status().message() << "\n";
    std::exit(2);
  }
  return *std::move(client);
}

bool ReadFile(const std::string& path, std::string* contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *contents = buffer.str();
  return true;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

int Predict(const std::vector<std::string>& images) {
  if (images.empty()) {
    std::cerr << "predict: give at least one IMAGE\n" << kUsage << "\n";
    return 2;
  }
  auto client = MakeClient();
  int failures = 0;
  for (const std::string& path : images) {
    cropshield::v1::PredictRequest request;
    if (!ReadFile(path, request.mutable_image()->mutable_data())) {
      std::cerr << "error: cannot read " << path << "\n";
      ++failures;
      continue;
    }
    request.set_top_k(absl::GetFlag(FLAGS_top_k));
    const auto start = std::chrono::steady_clock::now();
    absl::StatusOr<cropshield::v1::PredictResponse> result = client->Predict(request);
    const double round_trip_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!result.ok()) {
      failures += Fail(path, result.status());
      continue;
    }
    const cropshield::v1::PredictResponse& response = *result;
    if (absl::GetFlag(FLAGS_json)) {
      std::cout << "{\"image\":\"" << path << "\",\"round_trip_ms\":" << round_trip_ms
                << ",\"response\":" << ToJson(response) << "}\n";
      continue;
    }
    std::cout << absl::StrFormat("%s  (%dx%d, %s v%d, server %.1f ms, round trip %.1f ms)\n", path,
                                 response.image_width(), response.image_height(),
                                 response.model().name(), response.model().version(),
                                 response.timing().total_us() / 1000.0, round_trip_ms);
    int rank = 1;
    for (const auto& p : response.predictions()) {
      std::cout << absl::StrFormat("  %d. %-45s %7.2f%%\n", rank++, p.label(),
                                   100.0 * p.probability());
    }
  }
  return failures == 0 ? 0 : 1;
}

cropshield::v1::ModelSpec ModelFromFlags() {
  cropshield::v1::ModelSpec spec;
  spec.set_name(absl::GetFlag(FLAGS_model_name));
  spec.set_version(absl::GetFlag(FLAGS_model_version));
  return spec;
}

bool WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  return static_cast<bool>(out);
}

// NumPy .npy (format 1.0) of a little-endian float32 matrix, or raw float32 for other extensions.
bool WriteFloatMap(const std::string& path, const cropshield::v1::FloatMap& map) {
  if (!absl::EndsWith(path, ".npy")) return WriteFile(path, map.data());
  std::string header = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (",
                                    map.height(), ", ", map.width(), "), }");
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string file("\x93NUMPY\x01\x00", 8);
  file.push_back(static_cast<char>(header.size() & 0xff));
  file.push_back(static_cast<char>(header.size() >> 8));
  file += header;
  file += map.data();
  return WriteFile(path, file);
}

int Explain(const std::vector<std::string>& images) {
  if (images.size() != 1) {
    std::cerr << "explain: give exactly one IMAGE\n" << kUsage << "\n";
    return 2;
  }
  cropshield::v1::ExplainRequest request;
  if (!ReadFile(images[0], request.mutable_image()->mutable_data())) {
    std::cerr << "error: cannot read " << images[0] << "\n";
    return 1;
  }
  const std::string target_class = absl::GetFlag(FLAGS_class);
  int index = 0;
  if (!target_class.empty()) {
    if (absl::SimpleAtoi(target_class, &index)) {
      request.set_class_index(index);
    } else {
      request.set_class_label(target_class);
    }
  }
  const std::string method = absl::AsciiStrToUpper(absl::GetFlag(FLAGS_method));
  cropshield::v1::ExplainMethod method_value;
  if (!cropshield::v1::ExplainMethod_Parse("EXPLAIN_METHOD_" + method, &method_value)) {
    std::cerr << "explain: unknown --method " << absl::GetFlag(FLAGS_method) << "\n";
    return 2;
  }
  request.set_method(method_value);
  cropshield::v1::Colormap colormap;
  if (!cropshield::v1::Colormap_Parse(
          "COLORMAP_" + absl::AsciiStrToUpper(absl::GetFlag(FLAGS_colormap)), &colormap)) {
    std::cerr << "explain: unknown --colormap " << absl::GetFlag(FLAGS_colormap) << "\n";
    return 2;
  }
  cropshield::v1::ExplainOutputs* outputs = request.mutable_outputs();
  outputs->set_feature_map(!absl::GetFlag(FLAGS_raw).empty());
  outputs->set_image_map(!absl::GetFlag(FLAGS_image_map).empty());
  outputs->set_heatmap_png(!absl::GetFlag(FLAGS_out).empty());
  outputs->set_colormap(colormap);
  const std::string overlay = absl::GetFlag(FLAGS_overlay);
  if (!overlay.empty()) {
    outputs->set_overlay(true);
    outputs->set_overlay_alpha(static_cast<float>(absl::GetFlag(FLAGS_alpha)));
    const bool jpeg = absl::EndsWith(overlay, ".jpg") || absl::EndsWith(overlay, ".jpeg");
    outputs->set_overlay_encoding(jpeg ? cropshield::v1::IMAGE_ENCODING_JPEG
                                       : cropshield::v1::IMAGE_ENCODING_PNG);
  }
  request.set_top_k(absl::GetFlag(FLAGS_top_k));
  request.set_bypass_cache(absl::GetFlag(FLAGS_bypass_cache));
  *request.mutable_model() = ModelFromFlags();

  absl::StatusOr<cropshield::v1::ExplainResponse> result = MakeClient()->Explain(request);
  if (!result.ok()) return Fail(images[0], result.status());
  cropshield::v1::ExplainResponse& response = *result;
  std::vector<std::string> written;
  auto save = [&written](const std::string& path, bool ok) {
    if (!ok) {
      std::cerr << "error: cannot write " << path << "\n";
      return false;
    }
    written.push_back(path);
    return true;
  };
  if (!absl::GetFlag(FLAGS_out).empty() &&
      !save(absl::GetFlag(FLAGS_out),
            WriteFile(absl::GetFlag(FLAGS_out), response.heatmap_png()))) {
    return 1;
  }
  if (!overlay.empty() && !save(overlay, WriteFile(overlay, response.overlay()))) return 1;
  if (!absl::GetFlag(FLAGS_raw).empty() &&
      !save(absl::GetFlag(FLAGS_raw),
            WriteFloatMap(absl::GetFlag(FLAGS_raw), response.feature_map()))) {
    return 1;
  }
  if (!absl::GetFlag(FLAGS_image_map).empty() &&
      !save(absl::GetFlag(FLAGS_image_map),
            WriteFloatMap(absl::GetFlag(FLAGS_image_map), response.image_map()))) {
    return 1;
  }
  if (absl::GetFlag(FLAGS_json)) {
    // Binary payloads were written to files; keep the JSON readable.
    response.clear_heatmap_png();
    response.clear_overlay();
    response.mutable_feature_map()->clear_data();
    response.mutable_image_map()->clear_data();
    std::cout << ToJson(response) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat(
      "%s: %s (class %d, %.2f%%) by %s, %s, server %.1f ms\n", images[0], response.target().label(),
      response.target().class_index(), 100.0 * response.target().probability(),
      absl::AsciiStrToLower(cropshield::v1::ExplainMethod_Name(response.method()).substr(15)),
      response.cached() ? "cache hit" : "computed", response.timing().total_us() / 1000.0);
  std::cout << absl::StrFormat("  model saw x=%.1f y=%.1f w=%.1f h=%.1f of the photo\n",
                               response.crop_box().x(), response.crop_box().y(),
                               response.crop_box().width(), response.crop_box().height());
  for (const std::string& path : written) std::cout << "  wrote " << path << "\n";
  return 0;
}

int Stats() {
  absl::StatusOr<cropshield::v1::StatsResponse> result = MakeClient()->Stats();
  if (!result.ok()) return Fail("stats", result.status());
  const cropshield::v1::StatsResponse& response = *result;
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ToJson(response) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat("uptime %.0f s, %d calls in flight\n", response.uptime_seconds(),
                               response.in_flight());
  for (const auto& m : response.models()) {
    std::cout << absl::StrFormat("model %s v%d on %s (%s), %d classes\n", m.name(), m.version(),
                                 m.device(), m.precision(), m.labels_size());
  }
  std::cout << absl::StrFormat("%-12s %10s %10s %10s %10s %10s  %s\n", "rpc", "calls", "window",
                               "p50 ms", "p90 ms", "p99 ms", "errors");
  for (int i = 0; i < response.rpcs_size(); ++i) {
    const auto& counts = response.rpcs(i);
    const auto& latency = response.rpc_latency(i);
    std::string errors;
    for (const auto& [code, n] : counts.errors_by_code())
      absl::StrAppend(&errors, code, "=", n, " ");
    std::cout << absl::StrFormat("%-12s %10d %10d %10.2f %10.2f %10.2f  %s\n", counts.rpc(),
                                 counts.total(), latency.count(), latency.p50_us() / 1000,
                                 latency.p90_us() / 1000, latency.p99_us() / 1000, errors);
  }
  std::cout << absl::StrFormat("%-12s %10s %10s %10s %10s\n", "stage", "window", "p50 ms", "p90 ms",
                               "p99 ms");
  for (const auto& s : response.stage_latency()) {
    std::cout << absl::StrFormat("%-12s %10d %10.2f %10.2f %10.2f\n", s.name(), s.count(),
                                 s.p50_us() / 1000, s.p90_us() / 1000, s.p99_us() / 1000);
  }
  auto print_cache = [](const char* name, const cropshield::v1::CacheStats& c) {
    std::cout << absl::StrFormat(
        "%s cache: %d entries, %d / %d bytes, hit ratio %.3f (%d hits, %d misses), %d evictions\n",
        name, c.entries(), c.bytes(), c.capacity_bytes(), c.hit_ratio(), c.hits(), c.misses(),
        c.evictions());
  };
  print_cache("explain", response.explain_cache());
  print_cache("predict", response.predict_cache());
  return 0;
}

int ClearCache() {
  cropshield::v1::ClearCacheRequest request;
  if (!absl::GetFlag(FLAGS_model_name).empty() || absl::GetFlag(FLAGS_model_version) != 0) {
    *request.mutable_model() = ModelFromFlags();
  }
  absl::StatusOr<cropshield::v1::ClearCacheResponse> result =
      MakeClient(absl::ZeroDuration(), 0, /*admin=*/true)->ClearCache(request);
  if (!result.ok()) return Fail("clear-cache", result.status());
  const cropshield::v1::ClearCacheResponse& response = *result;
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ToJson(response) << "\n";
    return 0;
  }
  std::cout << absl::StrFormat(
      "cleared explain cache: %d entries, %d bytes; predict cache: %d entries, %d bytes\n",
      response.explain_entries_freed(), response.explain_bytes_freed(),
      response.predict_entries_freed(), response.predict_bytes_freed());
  return 0;
}

int ReloadModel() {
  cropshield::v1::ReloadModelRequest request;
  request.set_version(absl::GetFlag(FLAGS_model_version));
  absl::StatusOr<cropshield::v1::ReloadModelResponse> result =
      MakeClient(/*min_timeout=*/absl::Minutes(10), 0, /*admin=*/true)->ReloadModel(request);
  if (!result.ok()) return Fail("reload-model", result.status());
  const cropshield::v1::ReloadModelResponse& response = *result;
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << ToJson(response) << "\n";
    return 0;
  }
  if (!response.reloaded()) {
    std::cout << absl::StrFormat("%s v%d already serving; nothing loaded\n",
                                 response.current().name(), response.current().version());
    return 0;
  }
  std::cout << absl::StrFormat("reloaded %s v%d -> %s v%d in %.2f s\n", response.previous().name(),
                               response.previous().version(), response.current().name(),
                               response.current().version(), response.load_seconds());
  return 0;
}

// Health asks once, without retries: it answers "is it up now" (container health checks).
int Health() {
  auto stub = grpc::health::v1::Health::NewStub(MakeClient()->channel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return Fail("health", status);
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // `bench --json FILE` names an output file, unlike the boolean --json of other commands.
  std::vector<std::string> rewritten(argv, argv + argc);
  if (argc > 1 && std::string(argv[1]) == "bench") {
    for (size_t i = 2; i < rewritten.size(); ++i) {
      if (rewritten[i] == "--json" && i + 1 < rewritten.size()) {
        rewritten[i] = "--bench_json=" + rewritten[i + 1];
        rewritten.erase(rewritten.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      } else if (absl::StartsWith(rewritten[i], "--json=")) {
        rewritten[i] = "--bench_json=" + rewritten[i].substr(7);
      }
    }
  }
  std::vector<char*> rewritten_argv;
  for (std::string& arg : rewritten) rewritten_argv.push_back(arg.data());
  std::vector<char*> args =
      absl::ParseCommandLine(static_cast<int>(rewritten_argv.size()), rewritten_argv.data());
  if (args.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = args[1];
  std::vector<std::string> rest(args.begin() + 2, args.end());
  if (command == "predict") return Predict(rest);
  if (command == "health") return Health();
  if (command == "explain") return Explain(rest);
  if (command == "stats") return Stats();
  if (command == "clear-cache") return ClearCache();
  if (command == "reload-model") return ReloadModel();
  if (command == "bench") {
    return cropshield::client::RunBench(
        [](int i) { return MakeClient(absl::ZeroDuration(), i)->channel(); }, rest);
  }
  std::cerr << "unknown command '" << command << "'\n" << kUsage << "\n";
  return 2;
}
