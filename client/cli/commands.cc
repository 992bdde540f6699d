#include "client/cli/commands.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "client/cli/command_support.h"
#include "client/cli/files.h"
#include "client/cli/hints.h"
#include "client/cli/json.h"
#include "client/cli/models.h"
#include "client/cli/photos.h"
#include "client/cli/replicas.h"
#include "cropshield/client/client.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace cropshield::cli {
namespace {

using client::Client;

// ----- predict -----

void PrintPrediction(const std::string& name, const v1::PredictResponse& response,
                     double round_trip_ms, bool json) {
  if (json) {
    Json line = Json::object();
    line["image"] = name;
    line["round_trip_ms"] = round_trip_ms;
    line["response"] = ProtoToJson(response);
    std::cout << JsonLine(line) << "\n";
    return;
  }
  std::cout << absl::StrFormat("%s  (%dx%d, %s v%d, server %.1f ms, round trip %.1f ms)\n", name,
                               response.image_width(), response.image_height(),
                               response.model().name(), response.model().version(),
                               response.timing().total_us() / 1000.0, round_trip_ms);
  int rank = 1;
  for (const v1::Prediction& p : response.predictions()) {
    std::cout << absl::StrFormat("  %d. %-45s %7.2f%%\n", rank++, p.label(),
                                 100.0 * p.probability());
  }
}

// Predict on one input; false when it failed (reported on stderr).
bool PredictOne(const Client& client, const CliFlags& flags, const std::string& path) {
  absl::StatusOr<std::string> data = ReadInput(path, std::cin);
  if (!data.ok()) {
    std::cerr << "error: " << data.status().message() << "\n";
    return false;
  }
  if (data->empty()) {
    std::cerr << "error: " << (path == kStdin ? "standard input" : path) << " is empty\n";
    return false;
  }
  v1::PredictRequest request;
  request.mutable_image()->set_data(*std::move(data));
  request.set_top_k(flags.top_k);
  *request.mutable_model() = flags.Model();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::PredictResponse> response = client.Predict(request);
  const double round_trip_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!response.ok()) {
    Fail(path, response.status());
    return false;
  }
  PrintPrediction(path, *response, round_trip_ms, flags.json);
  return true;
}

// ----- explain -----

absl::Status ParseExplainOptions(const ExplainFlags& flags, v1::ExplainRequest* request) {
  if (!flags.target_class.empty()) {
    int index = 0;
    if (absl::SimpleAtoi(flags.target_class, &index)) {
      request->set_class_index(index);
    } else {
      request->set_class_label(flags.target_class);
    }
  }
  v1::ExplainMethod method;
  if (!v1::ExplainMethod_Parse("EXPLAIN_METHOD_" + absl::AsciiStrToUpper(flags.method), &method)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown --method ", flags.method));
  }
  request->set_method(method);
  v1::Colormap colormap;
  if (!v1::Colormap_Parse("COLORMAP_" + absl::AsciiStrToUpper(flags.colormap), &colormap)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown --colormap ", flags.colormap));
  }
  v1::ExplainOutputs* outputs = request->mutable_outputs();
  outputs->set_colormap(colormap);
  outputs->set_feature_map(!flags.raw.empty());
  outputs->set_image_map(!flags.image_map.empty());
  if (!flags.out.empty()) {
    if (absl::Status status = CheckPngName(flags.out); !status.ok()) return status;
    outputs->set_heatmap_png(true);
  }
  if (!flags.overlay.empty()) {
    absl::StatusOr<v1::ImageEncoding> encoding = OverlayEncodingFor(flags.overlay);
    if (!encoding.ok()) return encoding.status();
    outputs->set_overlay(true);
    outputs->set_overlay_encoding(*encoding);
    outputs->set_overlay_alpha(static_cast<float>(flags.alpha));
  }
  request->set_bypass_cache(flags.bypass_cache);
  return absl::OkStatus();
}

// After a failed Explain that named a class label: the nearest labels of the addressed model.
void PrintLabelHint(const Client& client, const v1::ExplainRequest& request,
                    const absl::Status& status) {
  if (request.class_label().empty() || !IsLabelError(status)) return;
  absl::StatusOr<v1::StatsResponse> stats = client.Stats();
  if (!stats.ok()) return;
  absl::StatusOr<const v1::ModelInfo*> model = FindModel(*stats, request.model());
  if (!model.ok()) return;
  const std::vector<std::string> labels((*model)->labels().begin(), (*model)->labels().end());
  const std::string hint = LabelHint(status, request.class_label(), labels);
  if (!hint.empty()) std::cerr << hint << "\n";
}

absl::Status WriteExplainFiles(const ExplainFlags& flags, const v1::ExplainResponse& response,
                               std::vector<std::string>* written) {
  auto save = [written](const std::string& path, absl::Status status) {
    if (status.ok()) written->push_back(path);
    return status;
  };
  absl::Status status;
  if (!flags.out.empty())
    status.Update(save(flags.out, WriteFile(flags.out, response.heatmap_png())));
  if (!flags.overlay.empty()) {
    status.Update(save(flags.overlay, WriteFile(flags.overlay, response.overlay())));
  }
  if (!flags.raw.empty()) {
    status.Update(save(flags.raw, WriteFloatMap(flags.raw, response.feature_map())));
  }
  if (!flags.image_map.empty()) {
    status.Update(save(flags.image_map, WriteFloatMap(flags.image_map, response.image_map())));
  }
  return status;
}

void PrintExplanation(const std::string& image, v1::ExplainResponse response,
                      const std::vector<std::string>& written, bool json) {
  if (json) {
    // Binary payloads were written to files; keep the JSON readable.
    response.clear_heatmap_png();
    response.clear_overlay();
    response.mutable_feature_map()->clear_data();
    response.mutable_image_map()->clear_data();
    std::cout << JsonLine(ProtoToJson(response)) << "\n";
    return;
  }
  std::cout << absl::StrFormat(
      "%s: %s (class %d, %.2f%%) by %s, %s, server %.1f ms\n", image, response.target().label(),
      response.target().class_index(), 100.0 * response.target().probability(),
      absl::AsciiStrToLower(v1::ExplainMethod_Name(response.method()).substr(15)),
      response.cached() ? "cache hit" : "computed", response.timing().total_us() / 1000.0);
  std::cout << absl::StrFormat("  model saw x=%.1f y=%.1f w=%.1f h=%.1f of the photo\n",
                               response.crop_box().x(), response.crop_box().y(),
                               response.crop_box().width(), response.crop_box().height());
  for (const std::string& path : written) std::cout << "  wrote " << path << "\n";
}

// ----- stats -----

void PrintStats(const v1::StatsResponse& response) {
  std::cout << absl::StrFormat("uptime %.0f s, %d calls in flight\n", response.uptime_seconds(),
                               response.in_flight());
  for (const v1::ModelInfo& m : response.models()) {
    std::cout << absl::StrFormat("model %s v%d on %s (%s), %d classes\n", m.name(), m.version(),
                                 m.device(), m.precision(), m.labels_size());
  }
  std::cout << absl::StrFormat("%-12s %10s %10s %10s %10s %10s  %s\n", "rpc", "calls", "window",
                               "p50 ms", "p90 ms", "p99 ms", "errors");
  for (int i = 0; i < response.rpcs_size() && i < response.rpc_latency_size(); ++i) {
    const v1::RpcCounts& counts = response.rpcs(i);
    const v1::LatencySummary& latency = response.rpc_latency(i);
    std::string errors;
    for (const auto& [code, n] : counts.errors_by_code()) {
      absl::StrAppend(&errors, code, "=", n, " ");
    }
    std::cout << absl::StrFormat("%-12s %10d %10d %10.2f %10.2f %10.2f  %s\n", counts.rpc(),
                                 counts.total(), latency.count(), latency.p50_us() / 1000,
                                 latency.p90_us() / 1000, latency.p99_us() / 1000, errors);
  }
  std::cout << absl::StrFormat("%-12s %10s %10s %10s %10s\n", "stage", "window", "p50 ms", "p90 ms",
                               "p99 ms");
  for (const v1::LatencySummary& s : response.stage_latency()) {
    std::cout << absl::StrFormat("%-12s %10d %10.2f %10.2f %10.2f\n", s.name(), s.count(),
                                 s.p50_us() / 1000, s.p90_us() / 1000, s.p99_us() / 1000);
  }
  auto print_cache = [](const char* name, const v1::CacheStats& c) {
    std::cout << absl::StrFormat(
        "%s cache: %d entries, %d / %d bytes, hit ratio %.3f (%d hits, %d misses), %d evictions\n",
        name, c.entries(), c.bytes(), c.capacity_bytes(), c.hit_ratio(), c.hits(), c.misses(),
        c.evictions());
  };
  print_cache("explain", response.explain_cache());
  print_cache("predict", response.predict_cache());
}

}  // namespace

v1::ModelSpec CliFlags::Model() const {
  v1::ModelSpec spec;
  spec.set_name(model_name);
  spec.set_version(model_version);
  return spec;
}

int RunPredict(const CliFlags& flags) {
  absl::StatusOr<ExpandedInputs> inputs = ExpandInputs(flags.inputs);
  if (!inputs.ok()) {
    if (inputs.status().code() == absl::StatusCode::kInvalidArgument) {
      return Usage("predict", inputs.status().message());
    }
    std::cerr << "error: " << inputs.status().message() << "\n";
    return kExitFailed;
  }
  if (!inputs->skipped.empty()) {
    std::cerr << "predict: skipped " << inputs->skipped.size()
              << " file(s) that are not photos (.jpg, .jpeg, .png, .webp by name and content), "
                 "e.g. "
              << inputs->skipped.front() << "\n";
  }
  absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection);
  if (!client.ok()) return Usage("predict", client.status().message());
  int failures = 0;
  for (const std::string& path : inputs->paths) {
    if (!PredictOne(**client, flags, path)) ++failures;
  }
  return failures == 0 ? kExitOk : kExitFailed;
}

int RunExplain(const CliFlags& flags) {
  v1::ExplainRequest request;
  if (absl::Status status = ParseExplainOptions(flags.explain, &request); !status.ok()) {
    return Usage("explain", status.message());
  }
  request.set_top_k(flags.top_k);
  *request.mutable_model() = flags.Model();
  absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection);
  if (!client.ok()) return Usage("explain", client.status().message());
  absl::StatusOr<std::string> data = ReadInput(flags.explain.image, std::cin);
  if (!data.ok()) {
    std::cerr << "error: " << data.status().message() << "\n";
    return kExitFailed;
  }
  request.mutable_image()->set_data(*std::move(data));
  absl::StatusOr<v1::ExplainResponse> response = (*client)->Explain(request);
  if (!response.ok()) {
    Fail(flags.explain.image, response.status());
    PrintLabelHint(**client, request, response.status());
    return kExitFailed;
  }
  std::vector<std::string> written;
  if (absl::Status status = WriteExplainFiles(flags.explain, *response, &written); !status.ok()) {
    std::cerr << "error: " << status.message() << "\n";
    return kExitFailed;
  }
  PrintExplanation(flags.explain.image, *std::move(response), written, flags.json);
  return kExitOk;
}

int RunStats(const CliFlags& flags) {
  absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection);
  if (!client.ok()) return Usage("stats", client.status().message());
  absl::StatusOr<v1::StatsResponse> response = (*client)->Stats();
  if (!response.ok()) return Fail("stats", response.status());
  if (IsSet(flags.Model())) {
    // Only the addressed model's entry; NOT_FOUND when it is not served.
    absl::StatusOr<const v1::ModelInfo*> model = FindModel(*response, flags.Model());
    if (!model.ok()) return Fail("stats", model.status());
    const v1::ModelInfo kept = **model;
    response->clear_models();
    *response->add_models() = kept;
  }
  if (flags.json) {
    std::cout << JsonLine(ProtoToJson(*response)) << "\n";
  } else {
    PrintStats(*response);
  }
  return kExitOk;
}

int RunReloadModel(const CliFlags& flags) {
  // Loading and warming a model takes a while: at least 10 minutes.
  ClientSpec admin;
  admin.access = Access::kAdmin;
  admin.min_timeout = absl::Minutes(10);
  absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection, admin);
  if (!client.ok()) return Usage("reload-model", client.status().message());
  // ReloadModel names a version only: the name, when given, must be the served model's.
  v1::ModelSpec name_only;
  name_only.set_name(flags.model_name);
  if (absl::Status status = CheckModelServed(**client, name_only); !status.ok()) {
    return Fail("reload-model", status);
  }
  v1::ReloadModelRequest request;
  request.set_version(flags.model_version);
  absl::StatusOr<v1::ReloadModelResponse> response = (*client)->ReloadModel(request);
  if (!response.ok()) {
    return FailAdmin("reload-model", response.status(), flags.connection);
  }
  if (flags.json) {
    std::cout << JsonLine(ProtoToJson(*response)) << "\n";
  } else if (!response->reloaded()) {
    std::cout << absl::StrFormat("%s v%d already serving; nothing loaded\n",
                                 response->current().name(), response->current().version());
  } else {
    std::cout << absl::StrFormat("reloaded %s v%d -> %s v%d in %.2f s\n",
                                 response->previous().name(), response->previous().version(),
                                 response->current().name(), response->current().version(),
                                 response->load_seconds());
  }
  return kExitOk;
}

// Health asks once, without retries: it answers "is it up now" (container health checks). With
// model flags, SERVING also requires that model to be served.
int RunHealth(const CliFlags& flags) {
  absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection);
  if (!client.ok()) return Usage("health", client.status().message());
  auto stub = grpc::health::v1::Health::NewStub((*client)->channel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(flags.service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(flags.connection.deadline_ms));
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return Fail("health", absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                       status.error_message()));
  }
  const bool serving = response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  if (serving && IsSet(flags.Model())) {
    client::CallOptions once;
    once.max_attempts = 1;
    absl::StatusOr<v1::StatsResponse> stats = (*client)->Stats(once);
    if (!stats.ok()) return Fail("health", stats.status());
    if (absl::StatusOr<const v1::ModelInfo*> model = FindModel(*stats, flags.Model());
        !model.ok()) {
      return Fail("health", model.status());
    }
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return serving ? kExitOk : kExitFailed;
}

int RunBench(const CliFlags& flags) {
  client::BenchOptions options = flags.bench;
  options.deadline_ms = flags.connection.deadline_ms;
  options.top_k = flags.top_k;
  options.model = flags.Model();
  // Every client is made before the run, so that bad connection flags stop it as usage errors.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, options.connections); ++i) {
    ClientSpec own_connection;
    own_connection.connection = i;
    absl::StatusOr<std::unique_ptr<Client>> client = MakeClient(flags.connection, own_connection);
    if (!client.ok()) return Usage("bench", client.status().message());
    channels.push_back((*client)->channel());
  }
  return client::RunBench([&channels](int i) { return channels[static_cast<size_t>(i)]; }, options);
}

}  // namespace cropshield::cli
