// The Open Inference Protocol (inference.GRPCInferenceService) of the real cropshield-server on a
// loopback port, through the stub generated from proto/inference/grpc_predict_v2.proto: liveness,
// readiness, metadata, Triton's ModelConfig/ModelStatistics, and ModelInfer against cropshield.v1
// Predict for the same photos (BYTES as contents and as raw contents), plus its error codes.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cropshield/v1/cropshield.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference/grpc_predict_v2.grpc.pb.h"
#include "tests/testing/calls.h"
#include "tests/testing/paths.h"
#include "tests/testing/server_process.h"

namespace cropshield {
namespace {

using ::cropshield::testing::kDemoRepository;
using ::cropshield::testing::kSamples;
using ::cropshield::testing::kServer;
using ::cropshield::testing::ReadFileOrDie;
using ::cropshield::testing::ServerProcess;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kModel[] = "cropshield-demo";
constexpr int kClasses = 22;
const std::vector<std::string> kPhotos = {"potato_early_blight_1600x1200.jpg",
                                          "tomato_healthy_512x512.jpg",
                                          "wheat_brown_rust_640x480.jpg"};

using InferRequest = inference::ModelInferRequest;
using InferResponse = inference::ModelInferResponse;

std::vector<std::string> PhotoBytes() {
  std::vector<std::string> photos;
  for (const std::string& name : kPhotos) photos.push_back(ReadFileOrDie(kSamples + "/" + name));
  return photos;
}

std::string RawBytesElements(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& element : elements) {
    const uint32_t size = static_cast<uint32_t>(element.size());
    for (int shift = 0; shift < 32; shift += 8) raw.push_back(static_cast<char>(size >> shift));
    raw += element;
  }
  return raw;
}

std::vector<std::string> DecodeBytesElements(const std::string& raw) {
  std::vector<std::string> elements;
  for (size_t at = 0; at + 4 <= raw.size();) {
    uint32_t size = 0;
    for (int i = 3; i >= 0; --i) size = (size << 8) | static_cast<unsigned char>(raw[at + i]);
    elements.push_back(raw.substr(at + 4, size));
    at += 4 + size;
  }
  return elements;
}

std::vector<float> DecodeFloats(const std::string& raw) {
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));  // little-endian host
  return values;
}

// A request with the photos as one BYTES tensor: contents.bytes_contents, or raw contents.
InferRequest RequestFor(const std::vector<std::string>& photos, bool raw) {
  InferRequest request;
  request.set_model_name(kModel);
  request.set_id("req-1");
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype("BYTES");
  input->add_shape(static_cast<int64_t>(photos.size()));
  if (raw) {
    input->add_shape(1);
    request.add_raw_input_contents(RawBytesElements(photos));
  } else {
    for (const std::string& photo : photos) input->mutable_contents()->add_bytes_contents(photo);
  }
  return request;
}

class OipTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = ServerProcess::Start(
        kServer, {"--model=" + kDemoRepository, "--device=cpu", "--workers=2",
                  "--max_image_bytes=3000000", "--max_message_bytes=16000000"});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    ASSERT_TRUE(server_->WaitServing(std::chrono::seconds(120)).ok()) << server_->Log();
  }
  static void TearDownTestSuite() { delete server_; }

  void SetUp() override {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    args.SetMaxSendMessageSize(64 << 20);
    channel_ =
        grpc::CreateCustomChannel(server_->address(), grpc::InsecureChannelCredentials(), args);
    stub_ = inference::GRPCInferenceService::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return context;
  }

  grpc::Status Infer(const InferRequest& request, InferResponse* response) const {
    return stub_->ModelInfer(Context().get(), request, response);
  }

  // cropshield.v1 Predict's probabilities (by class index) and top label for one photo.
  std::vector<float> PredictProbabilities(const std::string& photo, std::string* top_label) const {
    v1::PredictRequest request;
    request.mutable_image()->set_data(photo);
    request.set_top_k(kClasses);
    v1::PredictResponse response;
    auto stub = testing::MakeStub(server_->address());
    grpc::Status status = stub->Predict(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<float> probabilities(kClasses, -1.0f);
    for (const auto& p : response.predictions()) probabilities[p.class_index()] = p.probability();
    if (response.predictions_size() > 0) *top_label = response.predictions(0).label();
    return probabilities;
  }

  static ServerProcess* server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};
ServerProcess* OipTest::server_ = nullptr;

TEST_F(OipTest, LiveReadyAndServerMetadata) {
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(Context().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(Context().get(), {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
  inference::ModelReadyRequest model_ready;
  model_ready.set_name(kModel);
  inference::ModelReadyResponse model_ready_response;
  ASSERT_TRUE(stub_->ModelReady(Context().get(), model_ready, &model_ready_response).ok());
  EXPECT_TRUE(model_ready_response.ready());
  model_ready.set_name("no-such-model");
  ASSERT_TRUE(stub_->ModelReady(Context().get(), model_ready, &model_ready_response).ok());
  EXPECT_FALSE(model_ready_response.ready());
  inference::ServerMetadataResponse metadata;
  ASSERT_TRUE(stub_->ServerMetadata(Context().get(), {}, &metadata).ok());
  EXPECT_EQ(metadata.name(), "cropshield-serve");
  EXPECT_FALSE(metadata.version().empty());
  EXPECT_THAT(metadata.extensions(), ElementsAre("model_configuration", "statistics"));
}

TEST_F(OipTest, ModelMetadataAndConfig) {
  inference::ModelMetadataRequest request;
  request.set_name(kModel);
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(Context().get(), request, &metadata).ok());
  EXPECT_EQ(metadata.name(), kModel);
  EXPECT_THAT(metadata.versions(), ElementsAre("1"));
  EXPECT_EQ(metadata.platform(), "pytorch_libtorch");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "image");
  EXPECT_EQ(metadata.inputs(0).datatype(), "BYTES");
  EXPECT_THAT(metadata.inputs(0).shape(), ElementsAre(-1));
  ASSERT_EQ(metadata.outputs_size(), 2);
  EXPECT_EQ(metadata.outputs(0).name(), "probabilities");
  EXPECT_EQ(metadata.outputs(0).datatype(), "FP32");
  EXPECT_THAT(metadata.outputs(0).shape(), ElementsAre(-1, kClasses));
  EXPECT_EQ(metadata.outputs(1).name(), "labels");
  EXPECT_THAT(metadata.outputs(1).shape(), ElementsAre(-1, -1));

  inference::ModelConfigRequest config_request;
  config_request.set_name(kModel);
  inference::ModelConfigResponse config;
  ASSERT_TRUE(stub_->ModelConfig(Context().get(), config_request, &config).ok());
  EXPECT_EQ(config.config().name(), kModel);
  EXPECT_EQ(config.config().platform(), "pytorch_libtorch");
  EXPECT_GT(config.config().max_batch_size(), 0);
  ASSERT_EQ(config.config().input_size(), 1);
  EXPECT_EQ(config.config().input(0).data_type(), inference::TYPE_STRING);
  ASSERT_EQ(config.config().output_size(), 2);
  EXPECT_EQ(config.config().output(0).data_type(), inference::TYPE_FP32);
  EXPECT_THAT(config.config().output(0).dims(), ElementsAre(kClasses));
}

TEST_F(OipTest, InferMatchesPredictAsContentsAndAsRawContents) {
  const std::vector<std::string> photos = PhotoBytes();
  for (bool raw : {false, true}) {
    SCOPED_TRACE(raw ? "raw_input_contents" : "bytes_contents");
    InferResponse response;
    grpc::Status status = Infer(RequestFor(photos, raw), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model_name(), kModel);
    EXPECT_EQ(response.model_version(), "1");
    EXPECT_EQ(response.id(), "req-1");
    ASSERT_EQ(response.outputs_size(), 2);
    ASSERT_EQ(response.raw_output_contents_size(), 2);
    EXPECT_EQ(response.outputs(0).name(), "probabilities");
    EXPECT_EQ(response.outputs(0).datatype(), "FP32");
    EXPECT_THAT(response.outputs(0).shape(), ElementsAre(3, kClasses));
    EXPECT_EQ(response.outputs(1).name(), "labels");
    EXPECT_EQ(response.outputs(1).datatype(), "BYTES");
    EXPECT_THAT(response.outputs(1).shape(), ElementsAre(3, 3));
    const std::vector<float> probabilities = DecodeFloats(response.raw_output_contents(0));
    const std::vector<std::string> labels = DecodeBytesElements(response.raw_output_contents(1));
    ASSERT_EQ(probabilities.size(), 3u * kClasses);
    ASSERT_EQ(labels.size(), 9u);
    for (size_t i = 0; i < photos.size(); ++i) {
      std::string top_label;
      const std::vector<float> expected = PredictProbabilities(photos[i], &top_label);
      EXPECT_EQ(labels[i * 3], top_label) << kPhotos[i];
      for (int c = 0; c < kClasses; ++c) {
        EXPECT_NEAR(probabilities[i * kClasses + c], expected[c], 1e-6) << kPhotos[i] << " " << c;
      }
    }
  }
}

TEST_F(OipTest, TopKParameterAndRequestedOutputs) {
  InferRequest request = RequestFor({PhotoBytes()[0]}, false);
  (*request.mutable_parameters())["top_k"].set_int64_param(5);
  request.add_outputs()->set_name("labels");
  InferResponse response;
  ASSERT_TRUE(Infer(request, &response).ok());
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(response.outputs(0).name(), "labels");
  EXPECT_THAT(response.outputs(0).shape(), ElementsAre(1, 5));
  EXPECT_EQ(DecodeBytesElements(response.raw_output_contents(0)).size(), 5u);
}

TEST_F(OipTest, BadInputsAreInvalidArgumentNamingTheProblem) {
  const std::vector<std::string> photos = PhotoBytes();
  struct Case {
    const char* what;
    std::function<void(InferRequest*)> spoil;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"no input", [](InferRequest* r) { r->clear_inputs(); }, "one input tensor"},
      {"FP32", [](InferRequest* r) { r->mutable_inputs(0)->set_datatype("FP32"); }, "BYTES"},
      {"shape", [](InferRequest* r) { r->mutable_inputs(0)->set_shape(0, 5); }, "holds 3"},
      {"shape [3,2]", [](InferRequest* r) { r->mutable_inputs(0)->add_shape(2); }, "[N,1]"},
      {"both contents", [&](InferRequest* r) { r->add_raw_input_contents("x"); }, "both"},
      {"top_k", [](InferRequest* r) { (*r->mutable_parameters())["top_k"].set_int64_param(23); },
       "top_k"},
      {"output", [](InferRequest* r) { r->add_outputs()->set_name("logits"); }, "logits"},
      {"version", [](InferRequest* r) { r->set_model_version("latest"); }, "version"},
      {"not a photo",
       [](InferRequest* r) {
         r->mutable_inputs(0)->mutable_contents()->set_bytes_contents(1, "x");
       },
       "photo 1"},
  };
  for (const Case& c : cases) {
    InferRequest request = RequestFor(photos, false);
    c.spoil(&request);
    InferResponse response;
    grpc::Status status = Infer(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message)) << c.what;
  }
  InferRequest truncated = RequestFor(photos, true);
  truncated.set_raw_input_contents(0, truncated.raw_input_contents(0).substr(0, 100));
  InferResponse response;
  EXPECT_EQ(Infer(truncated, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(OipTest, UnknownModelIsNotFound) {
  InferRequest request = RequestFor({PhotoBytes()[0]}, false);
  request.set_model_name("no-such-model");
  InferResponse response;
  EXPECT_EQ(Infer(request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  request.set_model_name(kModel);
  request.set_model_version("7");
  EXPECT_EQ(Infer(request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  inference::ModelMetadataRequest metadata_request;
  metadata_request.set_name("no-such-model");
  inference::ModelMetadataResponse metadata;
  EXPECT_EQ(stub_->ModelMetadata(Context().get(), metadata_request, &metadata).error_code(),
            grpc::StatusCode::NOT_FOUND);
  inference::ModelConfigRequest config_request;
  config_request.set_name("no-such-model");
  inference::ModelConfigResponse config;
  EXPECT_EQ(stub_->ModelConfig(Context().get(), config_request, &config).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(OipTest, StatisticsCountInferences) {
  InferResponse response;
  ASSERT_TRUE(Infer(RequestFor(PhotoBytes(), false), &response).ok());
  inference::ModelStatisticsRequest request;
  inference::ModelStatisticsResponse statistics;
  ASSERT_TRUE(stub_->ModelStatistics(Context().get(), request, &statistics).ok());
  ASSERT_EQ(statistics.model_stats_size(), 1);
  const inference::ModelStatistics& stats = statistics.model_stats(0);
  EXPECT_EQ(stats.name(), kModel);
  EXPECT_EQ(stats.version(), "1");
  EXPECT_GE(stats.inference_count(), 3u);
  EXPECT_GE(stats.inference_stats().success().count(), 1u);
  EXPECT_GT(stats.last_inference(), 0u);
}

TEST_F(OipTest, HealthKnowsTheService) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service("inference.GRPCInferenceService");
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(Context().get(), request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace cropshield
