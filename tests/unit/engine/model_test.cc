// Model package resolution and the TorchScript engine on real (small) TorchScript packages that
// tests/testing/make_test_packages.py writes at test time.
#include "server/engine/model.h"

#include <ftw.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/model_package.h"

namespace cropshield::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(
        (fs::temp_directory_path() / absl::StrCat("cropshield_engine_test_", getpid())).string());
    const std::string command = absl::StrCat(CROPSHIELD_PYTHON, " ", CROPSHIELD_SOURCE_DIR,
                                             "/tests/testing/make_test_packages.py ", *dir_);
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    ConfigureTorchRuntime(1);
  }
  static void TearDownTestSuite() {
    // Not std::filesystem::remove_all: pip's CUDA libtorch.so exports its own statically linked
    // copy, which this binary then calls, and it jumps to a null pointer (seen on the H200 host).
    nftw(
        dir_->c_str(),
        [](const char* path, const struct stat*, int, FTW*) { return ::remove(path); }, 16,
        FTW_DEPTH | FTW_PHYS);
    delete dir_;
    dir_ = nullptr;
  }
  static std::string Path(const std::string& relative) { return *dir_ + "/" + relative; }

  static std::string* dir_;
};
std::string* EngineTest::dir_ = nullptr;

TEST_F(EngineTest, ResolvesHighestVersionFromRepositoryAndModelDirectory) {
  for (const std::string& path : {Path("repo"), Path("repo/tiny")}) {
    auto package = ResolveModelPackage(path);
    ASSERT_TRUE(package.ok()) << package.status();
    EXPECT_EQ(package->metadata.name(), "tiny");
    EXPECT_EQ(package->metadata.version(), 2);
    EXPECT_EQ(package->weights_path, Path("repo/tiny/2/model.pt"));
  }
}

TEST_F(EngineTest, ResolvesRequestedVersionAndVersionDirectory) {
  auto v1 = ResolveModelPackage(Path("repo"), "tiny", 1);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->metadata.version(), 1);
  auto direct = ResolveModelPackage(Path("repo/tiny/1"));
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_EQ(direct->metadata.version(), 1);
  EXPECT_EQ(direct->metadata.labels_size(), 22);
  EXPECT_EQ(direct->metadata.preprocessing().resize_shorter_side(), 256);
}

TEST_F(EngineTest, UnknownModelOrVersionIsNotFound) {
  auto missing_version = ResolveModelPackage(Path("repo"), "tiny", 7);
  EXPECT_EQ(missing_version.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing_version.status().message()), HasSubstr("no version 7"));
  auto missing_model = ResolveModelPackage(Path("repo"), "potato");
  EXPECT_EQ(missing_model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing_model.status().message()), HasSubstr("tiny"));
  EXPECT_EQ(ResolveModelPackage(Path("does-not-exist")).status().code(),
            absl::StatusCode::kNotFound);
}

struct BrokenCase {
  const char* directory;
  const char* message;  // part of the expected error message
};

class BrokenPackageTest : public EngineTest, public ::testing::WithParamInterface<BrokenCase> {};

TEST_P(BrokenPackageTest, IsRefusedWithMessageNamingTheProblem) {
  const BrokenCase& c = GetParam();
  absl::Status status;
  auto package = ResolveModelPackage(Path(absl::StrCat("broken/", c.directory)));
  if (!package.ok()) {
    status = package.status();
  } else {
    ModelOptions options;
    options.package = *package;
    options.device = "cpu";
    status = Model::Create(options).status();
  }
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.message));
}

INSTANTIATE_TEST_SUITE_P(Cases, BrokenPackageTest,
                         ::testing::Values(BrokenCase{"missing_labels", "'labels'"},
                                           BrokenCase{"missing_grad_cam", "'grad_cam'"},
                                           BrokenCase{"label_count", "21 labels"},
                                           BrokenCase{"corrupt_torchscript",
                                                      "cannot load TorchScript model"},
                                           BrokenCase{"hash_mismatch", "content hash"},
                                           BrokenCase{"unknown_field", "colour"},
                                           BrokenCase{"no_head_method", "no method 'classifier'"},
                                           BrokenCase{"bad_json", "not valid JSON"}),
                         [](const ::testing::TestParamInfo<BrokenCase>& info) {
                           return std::string(info.param.directory);
                         });

TEST_F(EngineTest, ClassifyMatchesPythonProbabilities) {
  auto package = ResolveModelPackage(Path("repo/tiny/2"));
  ASSERT_TRUE(package.ok()) << package.status();
  ModelOptions options;
  options.package = *package;
  options.device = "cpu";
  auto model = Model::Create(options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->device_name(), "cpu");
  EXPECT_EQ((*model)->num_classes(), 22);
  EXPECT_TRUE((*model)->load_report().optimized) << (*model)->load_report().optimize_note;

  std::vector<float> input(3 * 224 * 224);
  std::ifstream in(Path("input.f32"), std::ios::binary);
  in.read(reinterpret_cast<char*>(input.data()), static_cast<std::streamsize>(input.size() * 4));
  ASSERT_TRUE(in.good());
  std::ifstream expected_file(Path("expected.json"));
  std::string json((std::istreambuf_iterator<char>(expected_file)),
                   std::istreambuf_iterator<char>());
  // {"probabilities": [p0, p1, ...]}
  std::vector<float> expected;
  const char* cursor = json.c_str() + json.find('[') + 1;
  while (*cursor != ']' && *cursor != '\0') {
    char* end = nullptr;
    expected.push_back(std::strtof(cursor, &end));
    cursor = end;
    while (*cursor == ',' || *cursor == ' ') ++cursor;
  }
  ASSERT_EQ(expected.size(), 22u);

  std::vector<float> probs(22);
  ASSERT_TRUE((*model)->Classify(input, 1, absl::MakeSpan(probs)).ok());
  for (int i = 0; i < 22; ++i) EXPECT_NEAR(probs[i], expected[i], 1e-5) << "class " << i;
  EXPECT_NEAR(std::accumulate(probs.begin(), probs.end(), 0.0), 1.0, 1e-5);

  // A batch of two identical inputs gives two identical rows.
  std::vector<float> batch(input);
  batch.insert(batch.end(), input.begin(), input.end());
  std::vector<float> batch_probs(44);
  ASSERT_TRUE((*model)->Classify(batch, 2, absl::MakeSpan(batch_probs)).ok());
  for (int i = 0; i < 22; ++i) EXPECT_NEAR(batch_probs[22 + i], probs[i], 1e-5);

  // Size mismatches are refused, not crashed on.
  EXPECT_EQ((*model)->Classify(absl::MakeSpan(input).subspan(1), 1, absl::MakeSpan(probs)).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, UnknownDeviceIsRefused) {
  auto package = ResolveModelPackage(Path("repo/tiny/1"));
  ASSERT_TRUE(package.ok());
  ModelOptions options;
  options.package = *package;
  options.device = "tpu";
  EXPECT_EQ(Model::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DeviceTest, CpuAndUnknownSpecsAreNeverCuda) {
  EXPECT_FALSE(DeviceIsCuda("cpu"));
  EXPECT_FALSE(DeviceIsCuda("tpu"));
  EXPECT_FALSE(DeviceIsCuda("cuda:x"));
}

// Without CUDA, "auto" means the CPU and a CUDA spec is refused (Model::Create says why).
TEST_F(EngineTest, WithoutCudaAutoIsTheCpuAndCudaSpecsAreRefused) {
  if (CudaAvailable()) GTEST_SKIP() << "CUDA is available (DeviceGpuTest covers this host)";
  EXPECT_FALSE(DeviceIsCuda("auto"));
  EXPECT_FALSE(DeviceIsCuda("cuda"));
  EXPECT_FALSE(DeviceIsCuda("cuda:0"));
  auto package = ResolveModelPackage(Path("repo/tiny/1"));
  ASSERT_TRUE(package.ok());
  ModelOptions options;
  options.package = *package;
  options.device = "auto";
  auto model = Model::Create(options);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->device_name(), "cpu");
  options.device = "cuda:0";
  absl::Status refused = Model::Create(options).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("none is available"));
}

// GPU tests (ctest engine_model_gpu_test, label gpu): skipped without CUDA, never skipped with it.
class DeviceGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device for this build of libtorch";
  }
};

TEST_F(DeviceGpuTest, AutoAndCudaSpecsResolveToCuda) {
  EXPECT_TRUE(DeviceIsCuda("auto"));
  EXPECT_TRUE(DeviceIsCuda("cuda"));
  EXPECT_TRUE(DeviceIsCuda("cuda:0"));
}

}  // namespace
}  // namespace cropshield::engine

namespace cropshield::engine {
namespace {

std::vector<float> ReadFloats(const std::string& path, size_t count) {
  std::vector<float> values(count);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(values.data()), static_cast<std::streamsize>(count * 4));
  EXPECT_TRUE(in.good()) << path;
  return values;
}

// A package on CUDA when present (else CPU), warmed for batches up to 4.
absl::StatusOr<std::unique_ptr<Model>> OnDefaultDevice(const std::string& version_dir,
                                                       bool cuda_graphs = false) {
  auto package = ResolveModelPackage(version_dir);
  if (!package.ok()) return package.status();
  ModelOptions options;
  options.package = *package;
  options.device = "auto";
  options.max_batch_size = 4;
  options.cuda_graphs = cuda_graphs;
  return Model::Create(options);
}

TEST_F(EngineTest, GradCamOfGapModelEqualsClosedFormCam) {
  auto package = ResolveModelPackage(Path("gap"));
  ASSERT_TRUE(package.ok()) << package.status();
  ModelOptions options;
  options.package = *package;
  options.device = "cpu";
  // The oracle checks the Grad-CAM arithmetic: keep the backbone the same graph Python ran, so
  // that only the CAM computation is compared.
  options.optimize = false;
  auto model = Model::Create(options);
  ASSERT_TRUE(model.ok()) << model.status();
  int h = 0, w = 0, top1 = 0;
  std::ifstream(Path("gap_cam.txt")) >> h >> w >> top1;
  ASSERT_EQ(h, 14);
  const std::vector<float> expected = ReadFloats(Path("gap_cam.f32"), 22 * h * w);
  const std::vector<float> input = ReadFloats(Path("input.f32"), 3 * 224 * 224);

  // For a GAP + linear head the gradient is w_ck / (h w) everywhere, so Grad-CAM and HiResCAM
  // both reduce to CAM after normalisation. Explain all 22 classes, plus top-1, in one batch.
  std::vector<float> batch;
  std::vector<CamRequest> requests;
  for (int c = -1; c < 22; ++c) {
    batch.insert(batch.end(), input.begin(), input.end());
    requests.push_back({c, c % 2 == 0 ? CamMethod::kHiResCam : CamMethod::kGradCam});
  }
  auto results = (*model)->Explain(batch, requests);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 23u);
  EXPECT_EQ((*results)[0].target_class, top1);
  for (size_t i = 0; i < results->size(); ++i) {
    const CamResult& r = (*results)[i];
    ASSERT_EQ(r.map_width, w);
    ASSERT_EQ(r.map_height, h);
    const int c = r.target_class;
    EXPECT_EQ(c, i == 0 ? top1 : static_cast<int>(i) - 1);
    double max_diff = 0;
    for (int j = 0; j < h * w; ++j) {
      max_diff = std::max(max_diff, std::abs(double{r.map[j]} - expected[c * h * w + j]));
    }
    EXPECT_LE(max_diff, 1e-6) << "class " << c;
    EXPECT_NEAR(std::accumulate(r.probabilities.begin(), r.probabilities.end(), 0.0), 1.0, 1e-5);
  }
}

TEST_F(EngineTest, ExplainVariantsAreNormalisedAndOutOfRangeClassIsRefused) {
  auto package = ResolveModelPackage(Path("repo/tiny/2"));
  ASSERT_TRUE(package.ok());
  ModelOptions options;
  options.package = *package;
  options.device = "cpu";
  auto model = Model::Create(options);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<float> input = ReadFloats(Path("input.f32"), 3 * 224 * 224);
  for (CamMethod method : {CamMethod::kGradCam, CamMethod::kGradCamPlusPlus, CamMethod::kHiResCam,
                           CamMethod::kLayerCam}) {
    auto results = (*model)->Explain(input, std::vector<CamRequest>{{5, method}});
    ASSERT_TRUE(results.ok()) << results.status();
    const CamResult& r = results->front();
    EXPECT_EQ(r.target_class, 5);
    EXPECT_EQ(r.map_width, 14);  // 224 / MaxPool2d(16)
    const auto [lo, hi] = std::minmax_element(r.map.begin(), r.map.end());
    EXPECT_GE(*lo, 0.0f);
    EXPECT_LE(*hi, 1.0f);
  }
  auto bad = (*model)->Explain(input, std::vector<CamRequest>{{22, CamMethod::kGradCam}});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

// On CUDA, Classify (InferenceMode) and Explain (autograd) share the pinned staging buffers; a
// buffer made by one must be usable by the other, in either order (a GPU bug once broke this).
TEST_F(EngineTest, ClassifyAndExplainAlternateOnTheDefaultDevice) {
  auto model = OnDefaultDevice(Path("repo/tiny/2"));
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<float> input = ReadFloats(Path("input.f32"), 3 * 224 * 224);
  for (int round = 0; round < 3; ++round) {
    std::vector<float> probs(22);
    ASSERT_TRUE((*model)->Classify(input, 1, absl::MakeSpan(probs)).ok()) << round;
    const int top = static_cast<int>(std::max_element(probs.begin(), probs.end()) - probs.begin());
    auto cams = (*model)->Explain(input, std::vector<CamRequest>{{-1, CamMethod::kGradCam}});
    ASSERT_TRUE(cams.ok()) << (*model)->device_name() << " round " << round << ": "
                           << cams.status();
    EXPECT_EQ(cams->front().target_class, top);
  }
  // A batch of 3 (padded to the warmed 4 on CUDA) answers each image as a batch of 1 does.
  std::vector<float> single(22);
  ASSERT_TRUE((*model)->Classify(input, 1, absl::MakeSpan(single)).ok());
  std::vector<float> three_inputs;
  for (int i = 0; i < 3; ++i) three_inputs.insert(three_inputs.end(), input.begin(), input.end());
  std::vector<float> three(3 * 22);
  ASSERT_TRUE((*model)->Classify(three_inputs, 3, absl::MakeSpan(three)).ok());
  for (int i = 0; i < 3 * 22; ++i) EXPECT_NEAR(three[i], single[i % 22], 1e-4) << i;
  auto three_cams = (*model)->Explain(
      three_inputs, std::vector<CamRequest>(3, CamRequest{-1, CamMethod::kGradCam}));
  ASSERT_TRUE(three_cams.ok()) << three_cams.status();
  EXPECT_EQ(three_cams->size(), 3u);
}

// Images handed over one span each (a batch of requests' own buffers) classify exactly as the same
// images back to back.
TEST_F(EngineTest, ClassifiesImagesFromSeparateBuffersLikeOneBuffer) {
  auto model = OnDefaultDevice(Path("repo/tiny/2"));
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<float> input = ReadFloats(Path("input.f32"), 3 * 224 * 224);
  std::vector<float> flipped(input.rbegin(), input.rend());
  std::vector<float> back_to_back = input;
  back_to_back.insert(back_to_back.end(), flipped.begin(), flipped.end());
  std::vector<float> expected(2 * 22);
  ASSERT_TRUE((*model)->Classify(back_to_back, 2, absl::MakeSpan(expected)).ok());
  const std::vector<absl::Span<const float>> images = {flipped, input};
  std::vector<float> got(2 * 22);
  ASSERT_TRUE((*model)->Classify(images, absl::MakeSpan(got)).ok());
  for (int i = 0; i < 22; ++i) {
    EXPECT_NEAR(got[i], expected[22 + i], 1e-5) << i;
    EXPECT_NEAR(got[22 + i], expected[i], 1e-5) << i;
  }
  auto cams = (*model)->Explain(images, std::vector<CamRequest>(2));
  ASSERT_TRUE(cams.ok()) << cams.status();
  auto cams_back_to_back = (*model)->Explain(back_to_back, std::vector<CamRequest>(2));
  ASSERT_TRUE(cams_back_to_back.ok());
  EXPECT_EQ((*cams)[0].target_class, (*cams_back_to_back)[1].target_class);
  EXPECT_EQ((*cams)[1].map, (*cams_back_to_back)[0].map);

  const std::vector<float> short_image(10);
  const std::vector<absl::Span<const float>> bad = {input, short_image};
  EXPECT_EQ((*model)->Classify(bad, absl::MakeSpan(got)).code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<float> too_small(22);
  EXPECT_EQ((*model)->Classify(images, absl::MakeSpan(too_small)).code(),
            absl::StatusCode::kInvalidArgument);
}

// The engine's GPU tests (ctest engine_model_gpu_test, label gpu): skipped without CUDA, never
// skipped with it. The suite makes its own packages (EngineTest's set-up) only where it runs.
class EngineGpuTest : public EngineTest {
 protected:
  static void SetUpTestSuite() {
    if (CudaAvailable()) EngineTest::SetUpTestSuite();
  }
  static void TearDownTestSuite() {
    if (dir_ != nullptr) EngineTest::TearDownTestSuite();
  }
  void SetUp() override {
    if (!CudaAvailable()) GTEST_SKIP() << "no CUDA device for this build of libtorch";
  }
};

// With cuda_graphs on a CUDA device, every warmed batch size (1, 2, 4) is replayed from a graph and
// answers as the eager model does, for full and padded batches.
TEST_F(EngineGpuTest, CudaGraphsAnswerAsTheEagerModel) {
  auto eager = OnDefaultDevice(Path("repo/tiny/2"));
  ASSERT_TRUE(eager.ok()) << eager.status();
  auto graphed = OnDefaultDevice(Path("repo/tiny/2"), /*cuda_graphs=*/true);
  ASSERT_TRUE(graphed.ok()) << graphed.status();
  ASSERT_EQ((*graphed)->device_name(), "cuda:0");
  EXPECT_EQ((*graphed)->load_report().cuda_graphs, 3) << (*graphed)->load_report().cuda_graphs_note;
  EXPECT_EQ((*eager)->load_report().cuda_graphs, 0);
  const std::vector<float> input = ReadFloats(Path("input.f32"), 3 * 224 * 224);
  std::vector<float> flipped(input.rbegin(), input.rend());
  for (int batch = 1; batch <= 4; ++batch) {
    std::vector<absl::Span<const float>> images;
    for (int i = 0; i < batch; ++i) images.emplace_back(i % 2 == 0 ? input : flipped);
    std::vector<float> want(static_cast<size_t>(batch) * 22);
    std::vector<float> got(want.size());
    for (int round = 0; round < 2; ++round) {  // a replay must not depend on the previous one
      ASSERT_TRUE((*eager)->Classify(images, absl::MakeSpan(want)).ok());
      ASSERT_TRUE((*graphed)->Classify(images, absl::MakeSpan(got)).ok());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_NEAR(got[i], want[i], 1e-4) << "batch " << batch << " value " << i;
      }
    }
  }
}

// On the CPU the cuda_graphs option changes nothing: no graph, no note, the same answers.
TEST_F(EngineTest, CudaGraphsOptionIsIgnoredOnTheCpu) {
  auto package = ResolveModelPackage(Path("repo/tiny/2"));
  ASSERT_TRUE(package.ok());
  ModelOptions options;
  options.package = *package;
  options.device = "cpu";
  options.cuda_graphs = true;
  auto graphed = Model::Create(options);
  ASSERT_TRUE(graphed.ok()) << graphed.status();
  EXPECT_EQ((*graphed)->load_report().cuda_graphs, 0);
  EXPECT_EQ((*graphed)->load_report().cuda_graphs_note, "");
  options.cuda_graphs = false;
  auto eager = Model::Create(options);
  ASSERT_TRUE(eager.ok()) << eager.status();
  const std::vector<float> input = ReadFloats(Path("input.f32"), 3 * 224 * 224);
  std::vector<float> want(22), got(22);
  ASSERT_TRUE((*eager)->Classify(input, 1, absl::MakeSpan(want)).ok());
  ASSERT_TRUE((*graphed)->Classify(input, 1, absl::MakeSpan(got)).ok());
  EXPECT_EQ(got, want);
}

// Resident set size of this process in MiB.
double ResidentMiB() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

TEST(MemoryTest, ReleaseFreeMemoryHandsKeptHeapBackToTheOs) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizer's allocator replaces glibc malloc";
#endif
  ConfigureTorchRuntime(1);  // glibc keeps freed memory from here on
  constexpr size_t kBlock = 1 << 20;
  std::vector<char*> blocks;
  for (int i = 0; i < 96; ++i) {
    blocks.push_back(static_cast<char*>(std::malloc(kBlock)));
    ASSERT_NE(blocks.back(), nullptr);
    std::memset(blocks.back(), 1, kBlock);  // resident, not just reserved
  }
  for (char* block : blocks) std::free(block);
  const double kept = ResidentMiB();
  ReleaseFreeMemory();
  const double released = ResidentMiB();
  EXPECT_GT(kept - released, 64) << "RSS " << kept << " MiB -> " << released << " MiB";
}

}  // namespace
}  // namespace cropshield::engine
