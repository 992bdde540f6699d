// INT8 packages (issue #15): the metadata validator's quantization record, and the refusal of a
// quantized package on CUDA (tested directly: without CUDA, --device=cuda fails earlier).
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/model.h"
#include "server/engine/model_package.h"

namespace cropshield::engine {
namespace {

using ::testing::HasSubstr;

constexpr char kFp32Json[] = R"({
  "format_version": 1, "name": "demo", "version": 2, "architecture": "cropshield_cnn",
  "labels": ["a", "b"], "weights_file": "model.pt",
  "weights_xxh3_128": "0123456789abcdef0123456789abcdef",
  "preprocessing": {"input_size": 224, "resize_shorter_side": 256, "interpolation": "bilinear",
                    "crop": "center", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                    "channel_order": "RGB"},
  "grad_cam": {"features_method": "features", "head_method": "head", "target_layer": "block4"},
  "untrained": false)";

std::string WithQuantization(absl::string_view record) {
  return absl::StrCat(kFp32Json, R"(, "quantization": )", record, "}");
}

const std::string kSha(64, 'a');

std::string GoodRecord() {
  return absl::StrCat(R"({"dtype": "int8", "engine": "onednn",
    "fp32_layers": ["global_avg_pool", "classifier"], "calibration_sha256": ")",
                      kSha, R"(", "calibration_images": 22, "heldout_sha256": ")", kSha,
                      R"(", "heldout_images": 10, "heldout_top1_agreement": 1.0,
    "heldout_max_probability_diff": 0.0115})");
}

cropshield::v1::ModelMetadata GoodMetadata() {
  absl::StatusOr<cropshield::v1::ModelMetadata> metadata =
      ParseModelMetadata(WithQuantization(GoodRecord()));
  EXPECT_TRUE(metadata.ok()) << metadata.status();
  return metadata.ok() ? *metadata : cropshield::v1::ModelMetadata();
}

TEST(QuantizedMetadataTest, Fp32PackagesWithoutTheRecordStayValid) {
  absl::StatusOr<cropshield::v1::ModelMetadata> metadata =
      ParseModelMetadata(absl::StrCat(kFp32Json, "}"));
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_FALSE(metadata->has_quantization());
}

TEST(QuantizedMetadataTest, AcceptsTheExportToolsRecord) {
  const cropshield::v1::ModelMetadata metadata = GoodMetadata();
  ASSERT_TRUE(metadata.has_quantization());
  EXPECT_EQ(metadata.quantization().engine(), "onednn");
  EXPECT_EQ(metadata.quantization().calibration_images(), 22);
  EXPECT_DOUBLE_EQ(metadata.quantization().heldout_max_probability_diff(), 0.0115);
}

TEST(QuantizedMetadataTest, UnknownFieldInTheRecordIsRefused) {
  const std::string json =
      WithQuantization(R"({"dtype": "int8", "engine": "onednn", "observer": "minmax"})");
  EXPECT_EQ(ParseModelMetadata(json).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(QuantizedMetadataTest, RefusesBadValuesNamingTheField) {
  struct Case {
    void (*spoil)(cropshield::v1::Quantization*);
    const char* field;
  };
  const Case cases[] = {
      {[](cropshield::v1::Quantization* q) { q->set_dtype("int4"); }, "quantization.dtype"},
      {[](cropshield::v1::Quantization* q) { q->set_engine("cuda"); }, "quantization.engine"},
      {[](cropshield::v1::Quantization* q) { q->set_calibration_sha256("ABC"); },
       "calibration_sha256"},
      {[](cropshield::v1::Quantization* q) { q->set_heldout_sha256(std::string(64, 'A')); },
       "heldout_sha256"},
      {[](cropshield::v1::Quantization* q) { q->set_calibration_images(0); }, "calibration_images"},
      {[](cropshield::v1::Quantization* q) { q->set_heldout_top1_agreement(1.5); },
       "heldout_top1_agreement"},
      {[](cropshield::v1::Quantization* q) {
         q->set_heldout_max_probability_diff(std::numeric_limits<double>::quiet_NaN());
       },
       "heldout_max_probability_diff"},
      {[](cropshield::v1::Quantization* q) { q->add_fp32_layers(""); }, "fp32_layers"},
  };
  for (const Case& c : cases) {
    cropshield::v1::ModelMetadata metadata = GoodMetadata();
    c.spoil(metadata.mutable_quantization());
    const absl::Status status = ValidateModelMetadata(metadata);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
  }
}

TEST(QuantizedDeviceTest, Int8PackageIsRefusedOnCudaAndServedOnCpu) {
  ModelPackage package;
  package.weights_path = "repo/demo/2/model.pt";
  package.metadata = GoodMetadata();
  const absl::Status on_cuda = CheckQuantizedPackageDevice(package, /*device_is_cuda=*/true);
  EXPECT_EQ(on_cuda.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(on_cuda.message()), HasSubstr("CPU-only"));
  EXPECT_THAT(std::string(on_cuda.message()), HasSubstr("--device=cpu"));
  EXPECT_TRUE(CheckQuantizedPackageDevice(package, /*device_is_cuda=*/false).ok());
  package.metadata.clear_quantization();
  EXPECT_TRUE(CheckQuantizedPackageDevice(package, /*device_is_cuda=*/true).ok());
}

// The committed demo INT8 package (models/repository-int8, written by models/int8_demo.py).
absl::StatusOr<ModelPackage> DemoInt8Package() {
  return ResolveModelPackage(absl::StrCat(CROPSHIELD_SOURCE_DIR, "/models/repository-int8"));
}

TEST(QuantizedModelTest, DemoInt8PackageServesOnCpuInInt8) {
  absl::StatusOr<ModelPackage> package = DemoInt8Package();
  ASSERT_TRUE(package.ok()) << package.status();
  ModelOptions options;
  options.package = *package;
  options.device = "cpu";
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->precision(), "int8");
  // The frozen, optimised INT8 module computes what the loaded one does.
  EXPECT_TRUE((*model)->load_report().optimized) << (*model)->load_report().optimize_note;
}

TEST(QuantizedModelTest, EngineThisLibtorchLacksIsRefusedBeforeLoading) {
  absl::StatusOr<ModelPackage> package = DemoInt8Package();
  ASSERT_TRUE(package.ok()) << package.status();
  package->metadata.mutable_quantization()->set_engine("fbgemm");  // not in Debian's torch 1.13
  ModelOptions options;
  options.package = *package;
  options.device = "cpu";
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Create(options);
  if (model.ok()) GTEST_SKIP() << "this libtorch has fbgemm";
  EXPECT_EQ(model.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr("'fbgemm' engine"));
}

}  // namespace
}  // namespace cropshield::engine
