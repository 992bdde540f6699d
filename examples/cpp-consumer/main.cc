// cropshield-classify TARGET IMAGE [TOP_K]: classifies one photo with a CropShield Serve server and
// prints the top class first ("top: <label> <probability>"), then the ranking.
//   TARGET: host:port or dns:///host:port (round_robin over every address the name resolves to).
//   Environment: CROPSHIELD_TLS_CA (PEM of the CA that signs the server certificate; enables TLS),
//   CROPSHIELD_TLS_CERT + CROPSHIELD_TLS_KEY (client certificate for mutual TLS).
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "cropshield/client/client.h"

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " TARGET IMAGE [TOP_K]\n";
    return 2;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::cerr << "cannot read " << argv[2] << "\n";
    return 2;
  }
  std::ostringstream image;
  image << in.rdbuf();

  cropshield::client::Options options;
  options.target = argv[1];
  options.default_timeout = absl::Seconds(30);
  options.tls.root_ca_file = Env("CROPSHIELD_TLS_CA");
  options.tls.cert_chain_file = Env("CROPSHIELD_TLS_CERT");
  options.tls.private_key_file = Env("CROPSHIELD_TLS_KEY");
  options.tls.enabled = !options.tls.root_ca_file.empty();
  absl::StatusOr<std::unique_ptr<cropshield::client::Client>> client =
      cropshield::client::Client::Create(options);
  if (!client.ok()) {
    std::cerr << "client: " << client.status() << "\n";
    return 2;
  }

  const int top_k = argc > 3 ? std::atoi(argv[3]) : 3;
  absl::StatusOr<cropshield::v1::PredictResponse> response =
      (*client)->Classify(image.str(), top_k);
  if (!response.ok()) {
    std::cerr << "predict: " << response.status() << "\n";
    return 1;
  }
  if (response->predictions_size() == 0) {
    std::cerr << "predict: no predictions\n";
    return 1;
  }
  const auto& top = response->predictions(0);
  std::cout << "top: " << top.label() << " " << top.probability() << "\n";
  for (const auto& p : response->predictions()) {
    std::cout << "  " << p.class_index() << " " << p.label() << " " << p.probability() << "\n";
  }
  std::cout << "model: " << response->model().name() << " v" << response->model().version() << "\n";
  return 0;
}
