// GPU JPEG decoding + preprocessing against the CPU path (issue #14 item 1): model-input parity,
// top-1 agreement of the bundled demo model, and per-image refusals. Label gpu: every test skips
// on a host without a CUDA device. Extra photos (e.g. models/leafgen.py output of several sizes)
// are read recursively from $CROPSHIELD_GPU_TEST_PHOTOS when it is set.
#include <ATen/ATen.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/engine/gpu_image/gpu_jpeg_decoder.h"
#include "server/engine/gpu_image/gpu_preprocess.h"
#include "server/engine/model.h"
#include "server/engine/model_package.h"
#include "server/image/decode.h"
#include "server/image/preprocess.h"
#include "server/image/resize.h"
#include "tests/unit/image/test_images.h"

namespace cropshield::engine {
namespace {

namespace fs = std::filesystem;
namespace ti = image::test_images;

constexpr double kParityBound = 0.06;  // issue #14: mean abs difference of the model input
constexpr int kMaxBatch = 64;

struct Photo {
  std::string name;
  std::string bytes;
};

std::string RepositoryPath() { return std::string(CROPSHIELD_SOURCE_DIR) + "/models/repository"; }

void AddJpegsUnder(const fs::path& dir, std::vector<Photo>* photos) {
  std::vector<fs::path> paths;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().extension() == ".jpg") paths.push_back(entry.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const fs::path& path : paths) {
    photos->push_back({path.filename().string(), ti::ReadFileOrDie(path.string())});
  }
}

ti::Rgb DecodeFull(const std::string& bytes) {
  auto decoded = image::DecodeImage(bytes, image::DecodeOptions{});
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return ti::Rgb{decoded->width, decoded->height, decoded->rgb};
}

// Re-encodings of a sample at small sizes, and every EXIF orientation in both byte orders.
void AddDerivedPhotos(std::vector<Photo>* photos) {
  const std::string samples = std::string(CROPSHIELD_SOURCE_DIR) + "/models/samples/";
  const ti::Rgb source = DecodeFull(ti::ReadFileOrDie(samples + "potato_late_blight_800x600.jpg"));
  for (auto [w, h] : std::vector<std::pair<int, int>>{{256, 256}, {224, 224}, {300, 257}}) {
    auto resized = image::ResizeRgb(source.pixels, source.width, source.height, w, h);
    ASSERT_TRUE(resized.ok());
    photos->push_back({absl::StrCat("resized_", w, "x", h),
                       ti::EncodeJpeg(ti::Rgb{w, h, *resized}, 90, TJSAMP_420)});
  }
  const std::string oriented = ti::ReadFileOrDie(samples + "tomato_early_blight_600x800.jpg");
  for (int orientation = 1; orientation <= 8; ++orientation) {
    const bool big_endian = orientation % 2 == 0;
    photos->push_back({absl::StrCat("exif_", orientation),
                       ti::AddExifOrientation(oriented, orientation, big_endian)});
  }
}

std::vector<Photo> TestPhotos() {
  std::vector<Photo> photos;
  AddJpegsUnder(std::string(CROPSHIELD_SOURCE_DIR) + "/models/samples", &photos);
  AddDerivedPhotos(&photos);
  if (const char* extra = std::getenv("CROPSHIELD_GPU_TEST_PHOTOS"); extra && *extra) {
    AddJpegsUnder(extra, &photos);
  }
  return photos;
}

std::string EncodeProgressiveJpeg(const ti::Rgb& rgb) {
  tjhandle handle = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int rc = tjCompress2(handle, rgb.pixels.data(), rgb.width, 0, rgb.height, TJPF_RGB, &buffer,
                             &size, TJSAMP_420, 90, TJFLAG_PROGRESSIVE);
  std::string out = rc == 0 ? std::string(reinterpret_cast<char*>(buffer), size) : "";
  tjFree(buffer);
  tjDestroy(handle);
  return out;
}

// The CPU serving path: DCT-scaled decode + image::Preprocess.
std::vector<float> CpuModelInput(const std::string& bytes,
                                 const image::PreprocessOptions& options) {
  image::DecodeOptions decode_options;
  decode_options.min_shorter_side = options.resize_shorter_side;
  auto decoded = image::DecodeImage(bytes, decode_options);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  std::vector<float> input(3 * options.input_size * options.input_size);
  EXPECT_TRUE(image::Preprocess(*decoded, options, absl::MakeSpan(input), nullptr).ok());
  return input;
}

std::vector<int> Top1(const Model& model, const std::vector<float>& inputs, int count) {
  std::vector<int> top1;
  const int64_t elements = model.input_elements();
  for (int start = 0; start < count; start += kMaxBatch) {
    const int n = std::min(kMaxBatch, count - start);
    std::vector<float> probabilities(static_cast<size_t>(n) * model.num_classes());
    const absl::Status s =
        model.Classify(absl::MakeConstSpan(inputs.data() + start * elements, n * elements), n,
                       absl::MakeSpan(probabilities));
    EXPECT_TRUE(s.ok()) << s;
    for (int i = 0; i < n; ++i) {
      const float* row = probabilities.data() + static_cast<size_t>(i) * model.num_classes();
      top1.push_back(static_cast<int>(std::max_element(row, row + model.num_classes()) - row));
    }
  }
  return top1;
}

class GpuImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device for this build of libtorch";
    auto decoder = GpuJpegDecoder::Create(GpuJpegDecoderOptions{});
    ASSERT_TRUE(decoder.ok()) << decoder.status();
    decoder_ = std::move(*decoder);
    auto package = ResolveModelPackage(RepositoryPath());
    ASSERT_TRUE(package.ok()) << package.status();
    package_ = *package;
    options_.preprocess = engine::PreprocessOptionsOf(package_.metadata);
  }

  // Decodes and preprocesses `photos` on the GPU in batches of kMaxBatch; fp32 CHW on the host.
  std::vector<float> GpuModelInputs(const std::vector<Photo>& photos) {
    std::vector<float> all;
    for (size_t start = 0; start < photos.size(); start += kMaxBatch) {
      const size_t end = std::min(photos.size(), start + kMaxBatch);
      std::vector<absl::string_view> bytes;
      for (size_t i = start; i < end; ++i) bytes.push_back(photos[i].bytes);
      std::vector<at::Tensor> images;
      auto decoded = decoder_->Decode(bytes);
      for (size_t i = 0; i < decoded.size(); ++i) {
        EXPECT_TRUE(decoded[i].ok()) << photos[start + i].name << ": " << decoded[i].status();
        if (decoded[i].ok()) images.push_back(decoded[i]->rgb);
      }
      if (images.size() != decoded.size()) return {};
      auto batch = GpuPreprocess(images, options_);
      EXPECT_TRUE(batch.ok()) << batch.status();
      if (!batch.ok()) return {};
      at::Tensor host = batch->to(at::kCPU).contiguous();
      all.insert(all.end(), host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
    }
    return all;
  }

  std::unique_ptr<GpuJpegDecoder> decoder_;
  ModelPackage package_;
  GpuPreprocessOptions options_;
};

TEST_F(GpuImageTest, ModelInputMatchesCpuPathAndTop1Agrees) {
  const std::vector<Photo> photos = TestPhotos();
  const std::vector<float> gpu = GpuModelInputs(photos);
  ASSERT_FALSE(gpu.empty());
  const size_t elements = 3 * options_.preprocess.input_size * options_.preprocess.input_size;
  ASSERT_EQ(gpu.size(), photos.size() * elements);
  std::vector<float> cpu;
  double worst = 0, sum = 0;
  for (size_t i = 0; i < photos.size(); ++i) {
    const std::vector<float> one = CpuModelInput(photos[i].bytes, options_.preprocess);
    double diff = 0;
    for (size_t k = 0; k < elements; ++k) diff += std::fabs(one[k] - gpu[i * elements + k]);
    diff /= static_cast<double>(elements);
    EXPECT_LE(diff, kParityBound) << photos[i].name;
    worst = std::max(worst, diff);
    sum += diff;
    cpu.insert(cpu.end(), one.begin(), one.end());
  }
  ModelOptions model_options;
  model_options.package = package_;
  model_options.device = "cuda";
  model_options.max_batch_size = kMaxBatch;
  auto model = Model::Create(model_options);
  ASSERT_TRUE(model.ok()) << model.status();
  const int count = static_cast<int>(photos.size());
  const std::vector<int> cpu_top1 = Top1(**model, cpu, count);
  const std::vector<int> gpu_top1 = Top1(**model, gpu, count);
  int agree = 0;
  for (int i = 0; i < count; ++i) {
    agree += cpu_top1[i] == gpu_top1[i];
    if (cpu_top1[i] != gpu_top1[i]) std::printf("top-1 differs: %s\n", photos[i].name.c_str());
  }
  std::printf("backend %s: %d photos, mean abs diff mean %.4f max %.4f, top-1 agreement %d/%d\n",
              decoder_->backend_name().c_str(), count, sum / count, worst, agree, count);
  EXPECT_GE(agree, 0.99 * count);
}

TEST_F(GpuImageTest, ExifOrientationGivesTheCpuDisplaySize) {
  std::vector<Photo> photos;
  AddDerivedPhotos(&photos);
  std::vector<absl::string_view> bytes;
  for (const Photo& p : photos) bytes.push_back(p.bytes);
  auto decoded = decoder_->Decode(bytes);
  for (size_t i = 0; i < photos.size(); ++i) {
    ASSERT_TRUE(decoded[i].ok()) << photos[i].name << ": " << decoded[i].status();
    const ti::Rgb cpu = DecodeFull(photos[i].bytes);
    at::Tensor gpu = decoded[i]->rgb.to(at::kCPU).contiguous();
    ASSERT_EQ(gpu.size(0), cpu.height) << photos[i].name;
    ASSERT_EQ(gpu.size(1), cpu.width) << photos[i].name;
    // Both are full-size decodes of the same data (chroma upsampling may differ); a wrong
    // orientation would differ by tens of levels.
    double diff = 0;
    const uint8_t* g = gpu.data_ptr<uint8_t>();
    for (size_t k = 0; k < cpu.pixels.size(); ++k) diff += std::abs(int{g[k]} - int{cpu.pixels[k]});
    EXPECT_LT(diff / cpu.pixels.size(), 4.0) << photos[i].name;
  }
}

TEST_F(GpuImageTest, ReducedPrecisionBatchesAreChannelsLast) {
  std::vector<Photo> photos;
  AddDerivedPhotos(&photos);
  std::vector<absl::string_view> bytes;
  for (const Photo& p : photos) bytes.push_back(p.bytes);
  std::vector<at::Tensor> images;
  for (auto& d : decoder_->Decode(bytes)) {
    ASSERT_TRUE(d.ok()) << d.status();
    images.push_back(d->rgb);
  }
  auto reference = GpuPreprocess(images, options_);
  ASSERT_TRUE(reference.ok()) << reference.status();
  for (const char* precision : {"fp16", "bf16"}) {
    GpuPreprocessOptions options = options_;
    options.dtype = *GpuInputDtype(precision);
    auto batch = GpuPreprocess(images, options);
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->scalar_type(), options.dtype);
    EXPECT_TRUE(batch->is_contiguous(at::MemoryFormat::ChannelsLast));
    const double max_diff = (batch->to(at::kFloat) - *reference).abs().max().item<double>();
    EXPECT_LT(max_diff, 0.02) << precision;
  }
  EXPECT_FALSE(GpuInputDtype("int8").ok());
}

TEST_F(GpuImageTest, UnsupportedInputsFailPerImageOthersDecode) {
  const std::string samples = std::string(CROPSHIELD_SOURCE_DIR) + "/models/samples/";
  const std::string good = ti::ReadFileOrDie(samples + "potato_healthy_640x480.jpg");
  const ti::Rgb pixels = DecodeFull(good);
  const std::string progressive = EncodeProgressiveJpeg(pixels);
  ASSERT_FALSE(progressive.empty());
  std::vector<uint8_t> cmyk(static_cast<size_t>(64) * 48 * 4, 200);
  const std::string cmyk_jpeg = ti::EncodeJpegCmyk(64, 48, cmyk, 90, TJSAMP_444);
  const std::string truncated = good.substr(0, good.size() / 2);
  const std::string png = ti::EncodePngRgb(ti::GradientImage(64, 48));
  const std::string garbage = "\xFF\xD8\xFF\xE0 this is no JPEG at all";
  const std::vector<absl::string_view> batch = {good, progressive, cmyk_jpeg, truncated,
                                                png,  garbage,     "",        good};
  auto decoded = decoder_->Decode(batch);
  ASSERT_EQ(decoded.size(), batch.size());
  ASSERT_TRUE(decoded[0].ok()) << decoded[0].status();
  ASSERT_TRUE(decoded[7].ok()) << decoded[7].status();
  EXPECT_TRUE(at::equal(decoded[0]->rgb, decoded[7]->rgb));
  if (decoder_->backend_name() == "hardware") {
    EXPECT_EQ(decoded[1].status().code(), absl::StatusCode::kUnimplemented) << decoded[1].status();
  }
  EXPECT_EQ(decoded[2].status().code(), absl::StatusCode::kUnimplemented) << decoded[2].status();
  for (int i : {3, 4, 5, 6}) {
    EXPECT_EQ(decoded[i].status().code(), absl::StatusCode::kInvalidArgument)
        << i << ": " << decoded[i].status();
  }
  for (size_t i = 0; i < decoded.size(); ++i) {
    std::printf("input %zu: %s\n", i,
                decoded[i].ok() ? "decoded" : decoded[i].status().ToString().c_str());
  }
}

// Damaged entropy-coded data with intact headers passes screening; whatever nvJPEG makes of it, the
// batch must not crash and the intact images of the batch must still decode.
TEST_F(GpuImageTest, DamagedScanDataFailsAloneOrDecodes) {
  const std::string samples = std::string(CROPSHIELD_SOURCE_DIR) + "/models/samples/";
  const std::string good = ti::ReadFileOrDie(samples + "potato_healthy_640x480.jpg");
  std::string damaged = good;
  for (size_t i = damaged.size() / 3; i < damaged.size() / 3 + 2000; ++i) damaged[i] = '\xFF';
  const std::vector<absl::string_view> batch = {good, damaged, good};
  auto decoded = decoder_->Decode(batch);
  ASSERT_EQ(decoded.size(), batch.size());
  EXPECT_TRUE(decoded[0].ok()) << decoded[0].status();
  EXPECT_TRUE(decoded[2].ok()) << decoded[2].status();
  std::printf("damaged scan data: %s\n",
              decoded[1].ok() ? "decoded" : decoded[1].status().ToString().c_str());
  if (!decoded[1].ok()) {
    EXPECT_EQ(decoded[1].status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// The backend for GPUs without a JPEG engine: same pixels as the hardware engine (up to chroma
// upsampling), and progressive JPEGs decode there.
TEST_F(GpuImageTest, HybridBackendDecodesLikeTheHardwareEngine) {
  GpuJpegDecoderOptions options;
  options.backend = GpuJpegBackend::kGpuHybrid;
  auto hybrid = GpuJpegDecoder::Create(options);
  ASSERT_TRUE(hybrid.ok()) << hybrid.status();
  EXPECT_EQ((*hybrid)->backend_name(), "gpu-hybrid");
  std::vector<Photo> photos;
  AddDerivedPhotos(&photos);
  const std::string samples = std::string(CROPSHIELD_SOURCE_DIR) + "/models/samples/";
  photos.push_back({"progressive", EncodeProgressiveJpeg(DecodeFull(ti::ReadFileOrDie(
                                       samples + "potato_healthy_640x480.jpg")))});
  std::vector<absl::string_view> bytes;
  for (const Photo& p : photos) bytes.push_back(p.bytes);
  auto from_hybrid = (*hybrid)->Decode(bytes);
  auto from_default = decoder_->Decode(bytes);
  for (size_t i = 0; i < photos.size(); ++i) {
    ASSERT_TRUE(from_hybrid[i].ok()) << photos[i].name << ": " << from_hybrid[i].status();
    if (!from_default[i].ok()) continue;  // progressive on the hardware engine
    const at::Tensor a = from_hybrid[i]->rgb.to(at::kInt);
    const at::Tensor b = from_default[i]->rgb.to(at::kInt);
    ASSERT_EQ(a.sizes(), b.sizes()) << photos[i].name;
    EXPECT_LT((a - b).abs().to(at::kFloat).mean().item<double>(), 2.0) << photos[i].name;
  }
}

}  // namespace
}  // namespace cropshield::engine
