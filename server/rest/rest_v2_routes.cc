// The Open Inference Protocol's REST endpoints (/v2), translated to InferenceProtocol's messages.
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "server/rest/http_status.h"
#include "server/rest/oip_json.h"
#include "server/rest/rest_front_end.h"
#include "server/rest/waiting_responder.h"

namespace cropshield::rest {
namespace {

constexpr char kJson[] = "application/json";
// /v2/models/{name}[/versions/{version}] followed by one of the suffixes below.
constexpr char kModelPath[] = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
constexpr char kBinaryHeader[] = "Inference-Header-Content-Length";

std::string Name(const httplib::Request& request) { return request.matches[1].str(); }
std::string Version(const httplib::Request& request) {
  return request.matches.size() > 2 ? request.matches[2].str() : std::string();
}

// 200 when `ready`, else 503 (what HTTP load balancers and Kubernetes probes read as not ready).
void Readiness(bool ready, httplib::Response& response) {
  response.status = ready ? 200 : 503;
  response.set_content(Dump(nlohmann::json{{"ready", ready}}), kJson);
}

absl::StatusOr<size_t> JsonLength(const httplib::Request& request) {
  if (!request.has_header(kBinaryHeader)) return request.body.size();
  size_t length = 0;
  if (!absl::SimpleAtoi(request.get_header_value(kBinaryHeader), &length)) {
    return absl::InvalidArgumentError(absl::StrCat(kBinaryHeader, " must be a byte count"));
  }
  return length;
}

}  // namespace

void RestFrontEnd::AddV2Routes(httplib::Server& routes) {
  using Request = httplib::Request;
  using Response = httplib::Response;
  routes.Get("/v2", [this](const Request&, Response& response) {
    inference::ServerMetadataResponse metadata;
    protocol_->ServerMetadata(&metadata);
    response.set_content(ServerMetadataJson(metadata), kJson);
  });
  routes.Get("/v2/health/live", [](const Request&, Response& response) {
    response.set_content(Dump(nlohmann::json{{"live", true}}), kJson);
  });
  routes.Get("/v2/health/ready", [this](const Request&, Response& response) {
    Readiness(protocol_->ServerReady(), response);
  });
  routes.Get(absl::StrCat(kModelPath, "/ready"),
             [this](const Request& request, Response& response) {
               Readiness(protocol_->ModelReady(Name(request), Version(request)), response);
             });
  routes.Get(kModelPath, [this](const Request& request, Response& response) {
    inference::ModelMetadataResponse metadata;
    absl::Status status = protocol_->ModelMetadata(Name(request), Version(request), &metadata);
    if (!status.ok()) return Fail(status, response);
    response.set_content(ModelMetadataJson(metadata), kJson);
  });
  routes.Post(absl::StrCat(kModelPath, "/infer"),
              [this](const Request& request, Response& response) { Infer(request, response); });
}

void RestFrontEnd::Infer(const httplib::Request& request, httplib::Response& response) {
  absl::StatusOr<size_t> json_length = JsonLength(request);
  if (!json_length.ok()) return Fail(json_length.status(), response);
  InferRequestJson parsed;
  if (absl::Status read = ParseInferRequest(request.body, *json_length, &parsed); !read.ok()) {
    return Fail(read, response);
  }
  parsed.request.set_model_name(Name(request));
  parsed.request.set_model_version(Version(request));
  inference::ModelInferResponse answer;
  WaitingResponder responder(DeadlineFor(request));
  if (absl::Status started = protocol_->StartInfer(parsed.request, &answer, &responder);
      !started.ok()) {
    return Fail(started, response);
  }
  if (absl::Status done = responder.Wait(); !done.ok()) return Fail(done, response);
  EncodedResponse encoded = EncodeInferResponse(answer, parsed);
  if (encoded.json_length == encoded.body.size()) {
    response.set_content(std::move(encoded.body), kJson);
    return;
  }
  response.set_header(kBinaryHeader, absl::StrCat(encoded.json_length));
  response.set_content(std::move(encoded.body), "application/octet-stream");
}

}  // namespace cropshield::rest
