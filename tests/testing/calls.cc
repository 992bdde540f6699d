#include "tests/testing/calls.h"

#include <regex>

#include "tests/testing/server_process.h"

namespace cropshield::testing {

std::unique_ptr<v1::CropShieldService::Stub> MakeStub(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials,
    const grpc::ChannelArguments& extra) {
  grpc::ChannelArguments args = extra;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  return v1::CropShieldService::NewStub(
      grpc::CreateCustomChannel(address, std::move(credentials), args));
}

// labels.json: {"file.jpg": {"class_index": i, "label": "..."}, ...}
std::map<std::string, std::string> SampleLabels(const std::string& samples_dir) {
  const std::string json = ReadFileOrDie(samples_dir + "/labels.json");
  std::map<std::string, std::string> labels;
  const std::regex entry("\"([^\"]+\\.jpg)\"\\s*:\\s*\\{[^}]*\"label\"\\s*:\\s*\"([^\"]+)\"");
  for (auto it = std::sregex_iterator(json.begin(), json.end(), entry);
       it != std::sregex_iterator(); ++it) {
    labels[(*it)[1]] = (*it)[2];
  }
  return labels;
}

}  // namespace cropshield::testing
