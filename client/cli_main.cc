// cropshield: command-line client of CropShield Serve.
//   cropshield predict IMAGE... [--target host:port] [--top_k N] [--json] [--deadline_ms N]
//   cropshield health [--target host:port] [--service NAME]
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cropshield/v1/cropshield.grpc.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/health/v1/health.grpc.pb.h"

ABSL_FLAG(std::string, target, "localhost:50051",
          "Server address: host:port, or any gRPC target such as dns:///host:port.");
ABSL_FLAG(int, top_k, 3, "predict: number of ranked classes to show.");
ABSL_FLAG(bool, json, false, "Print responses as JSON (one object per line) instead of a table.");
ABSL_FLAG(int, deadline_ms, 30000, "Deadline of each call in milliseconds.");
ABSL_FLAG(std::string, service, "",
          "health: service name to ask about (empty: the server as a whole).");

namespace {

constexpr char kUsage[] =
    "CropShield Serve command-line client.\n"
    "Usage:\n"
    "  cropshield predict IMAGE... [--target host:port] [--top_k N] [--json] [--deadline_ms N]\n"
    "  cropshield health [--target host:port] [--service NAME]\n"
    "Exit status: 0 on success, 1 when a call fails (the gRPC status is printed), 2 on usage errors.";

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

int Fail(absl::string_view what, const grpc::Status& status) {
  std::cerr << "error: " << what << ": " << CodeName(status.error_code()) << ": "
            << status.error_message() << "\n";
  return 1;
}

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(absl::GetFlag(FLAGS_deadline_ms)));
}

std::shared_ptr<grpc::Channel> MakeChannel() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetLoadBalancingPolicyName("round_robin");
  return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(),
                                   args);
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
  auto stub = cropshield::v1::CropShieldService::NewStub(MakeChannel());
  int failures = 0;
  for (const std::string& path : images) {
    cropshield::v1::PredictRequest request;
    if (!ReadFile(path, request.mutable_image()->mutable_data())) {
      std::cerr << "error: cannot read " << path << "\n";
      ++failures;
      continue;
    }
    request.set_top_k(absl::GetFlag(FLAGS_top_k));
    cropshield::v1::PredictResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    const auto start = std::chrono::steady_clock::now();
    grpc::Status status = stub->Predict(&context, request, &response);
    const double round_trip_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!status.ok()) {
      failures += Fail(path, status);
      continue;
    }
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
      std::cout << absl::StrFormat("  %d. %-45s %7.2f%%\n", rank++, p.label(), 100.0 * p.probability());
    }
  }
  return failures == 0 ? 0 : 1;
}

int Health() {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel());
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
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = args[1];
  std::vector<std::string> rest(args.begin() + 2, args.end());
  if (command == "predict") return Predict(rest);
  if (command == "health") return Health();
  std::cerr << "unknown command '" << command << "'\n" << kUsage << "\n";
  return 2;
}
