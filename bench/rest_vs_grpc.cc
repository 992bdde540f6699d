// REST against gRPC latency for one photo, one caller at a time (issue #16's goal: REST Predict
// p50 within 0.3 ms of gRPC on the same machine). Both clients are C++ (cpp-httplib and the
// project's gRPC client), so neither side pays an interpreter. Calls alternate in blocks so that
// machine noise hits both protocols alike; the first `--warmup` calls of each are not counted.
//
//   cropshield-rest-vs-grpc --grpc=127.0.0.1:50051 --http=127.0.0.1:8000 --image=w2.jpg
//       [--calls=2000 --block=50 --warmup=100]
// Prints one JSON object: p50/p90/p99 in microseconds per protocol and the p50 difference.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "cropshield/client/client.h"

ABSL_FLAG(std::string, grpc, "127.0.0.1:50051", "gRPC target");
ABSL_FLAG(std::string, http, "127.0.0.1:8000", "HTTP host:port");
ABSL_FLAG(std::string, image, "", "photo to classify");
ABSL_FLAG(int, calls, 2000, "measured calls per protocol");
ABSL_FLAG(int, block, 50, "calls per protocol before switching");
ABSL_FLAG(int, warmup, 100, "uncounted calls per protocol first");
ABSL_FLAG(int, top_k, 5, "top_k of every call");

namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<size_t>(p * (values.size() - 1))];
}

struct Protocols {
  std::unique_ptr<cropshield::client::Client> grpc;
  std::string http_host;
  int http_port = 0;
  cropshield::v1::PredictRequest request;
  std::string path;
};

// One call's microseconds; negative on failure.
double GrpcCall(const Protocols& p) {
  const auto start = Clock::now();
  auto answer = p.grpc->Predict(p.request);
  if (!answer.ok()) return -1;
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

double RestCall(const Protocols& p) {
  const auto start = Clock::now();
  httplib::Client client(p.http_host, p.http_port);  // the server closes after each response
  auto answer = client.Post(p.path.c_str(), p.request.image().data(), "image/jpeg");
  if (!answer || answer->status != 200) return -1;
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

std::string Summary(const char* name, const std::vector<double>& micros) {
  return absl::StrFormat(
      "\"%s\": {\"calls\": %d, \"p50_us\": %.1f, \"p90_us\": %.1f, "
      "\"p99_us\": %.1f}",
      name, micros.size(), Percentile(micros, 0.5), Percentile(micros, 0.9),
      Percentile(micros, 0.99));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::ifstream file(absl::GetFlag(FLAGS_image), std::ios::binary);
  std::stringstream photo;
  photo << file.rdbuf();
  if (!file || photo.str().empty()) {
    std::cerr << "cannot read --image\n";
    return 2;
  }
  Protocols p;
  cropshield::client::Options options;
  options.target = absl::GetFlag(FLAGS_grpc);
  auto client = cropshield::client::Client::Create(options);
  if (!client.ok()) {
    std::cerr << client.status() << "\n";
    return 2;
  }
  p.grpc = *std::move(client);
  const std::string http = absl::GetFlag(FLAGS_http);
  p.http_host = http.substr(0, http.rfind(':'));
  if (!absl::SimpleAtoi(http.substr(http.rfind(':') + 1), &p.http_port)) return 2;
  p.request.mutable_image()->set_data(photo.str());
  p.request.set_top_k(absl::GetFlag(FLAGS_top_k));
  p.path = absl::StrFormat("/v1/predict?top_k=%d", absl::GetFlag(FLAGS_top_k));

  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) {
    if (GrpcCall(p) < 0) {
      std::cerr << "a gRPC warm-up call failed: " << p.grpc->Predict(p.request).status() << "\n";
      return 1;
    }
    if (RestCall(p) < 0) {
      httplib::Client client(p.http_host, p.http_port);
      auto answer = client.Post(p.path.c_str(), p.request.image().data(), "image/jpeg");
      std::cerr << "a REST warm-up call failed: "
                << (answer ? answer->body : httplib::to_string(answer.error())) << "\n";
      return 1;
    }
  }
  std::vector<double> grpc_us, rest_us;
  const int calls = absl::GetFlag(FLAGS_calls), block = std::max(1, absl::GetFlag(FLAGS_block));
  while (static_cast<int>(grpc_us.size()) < calls) {
    for (int i = 0; i < block; ++i) grpc_us.push_back(GrpcCall(p));
    for (int i = 0; i < block; ++i) rest_us.push_back(RestCall(p));
  }
  if (std::count_if(grpc_us.begin(), grpc_us.end(), [](double v) { return v < 0; }) +
          std::count_if(rest_us.begin(), rest_us.end(), [](double v) { return v < 0; }) >
      0) {
    std::cerr << "some calls failed\n";
    return 1;
  }
  std::printf("{%s, %s, \"rest_minus_grpc_p50_us\": %.1f}\n", Summary("grpc", grpc_us).c_str(),
              Summary("rest", rest_us).c_str(),
              Percentile(rest_us, 0.5) - Percentile(grpc_us, 0.5));
  return 0;
}
