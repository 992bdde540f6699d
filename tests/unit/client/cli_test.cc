// The pure parts of the `cropshield` command line (client/cli): photo inputs, JSON output, label
// suggestions, replica resolution, output file names, hints. The CLI against a real server is in
// tests/integration/cli_test.cc.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/files.h"
#include "client/cli/hints.h"
#include "client/cli/json.h"
#include "client/cli/labels.h"
#include "client/cli/models.h"
#include "client/cli/photos.h"
#include "client/cli/replicas.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cropshield::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kJpegHead[] = "\xFF\xD8\xFF\xE0\0\x10JFIF\0";
constexpr char kPngHead[] = "\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR";

class TempDir {
 public:
  TempDir() : path_(fs::path(::testing::TempDir()) / absl::StrCat("cli_test_", getpid())) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& contents) const {
    const std::string path = (path_ / name).string();
    std::ofstream(path, std::ios::binary) << contents;
    return path;
  }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
};

TEST(PhotosTest, SignaturesAndExtensions) {
  EXPECT_TRUE(HasPhotoSignature(std::string(kJpegHead, 12)));
  EXPECT_TRUE(HasPhotoSignature(std::string(kPngHead, 12)));
  EXPECT_TRUE(HasPhotoSignature(std::string("RIFF\x10\0\0\0WEBPVP8 ", 16)));
  EXPECT_FALSE(HasPhotoSignature(std::string("RIFF\x10\0\0\0WAVEfmt ", 16)));
  EXPECT_FALSE(HasPhotoSignature("{\"labels\": []}"));
  EXPECT_FALSE(HasPhotoSignature(""));
  EXPECT_TRUE(HasPhotoExtension("a/b.JPG"));
  EXPECT_TRUE(HasPhotoExtension("x.jpeg"));
  EXPECT_TRUE(HasPhotoExtension("x.webp"));
  EXPECT_FALSE(HasPhotoExtension("x.json"));
  EXPECT_FALSE(HasPhotoExtension("jpg"));
}

TEST(PhotosTest, DirectoryBecomesItsPhotosSortedAndSkipsTheRest) {
  TempDir dir;
  const std::string b = dir.Write("b.jpg", std::string(kJpegHead, 12));
  const std::string a = dir.Write("a.png", std::string(kPngHead, 16));
  const std::string labels = dir.Write("labels.json", "{}");
  const std::string fake = dir.Write("fake.jpg", "not a jpeg at all");
  fs::create_directories(dir.path() + "/sub.jpg");
  absl::StatusOr<ExpandedInputs> inputs = ExpandInputs({"first.jpg", dir.path(), "-"});
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_THAT(inputs->paths, ElementsAre("first.jpg", a, b, "-"));
  EXPECT_THAT(inputs->skipped, ::testing::UnorderedElementsAre(labels, fake));
}

TEST(PhotosTest, EmptyDirectoryAndStdinTwiceAreErrors) {
  TempDir dir;
  dir.Write("notes.txt", "hello");
  EXPECT_EQ(ExpandInputs({dir.path()}).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ExpandInputs({"-", "-"}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PhotosTest, ReadInputReadsFilesAndStdin) {
  TempDir dir;
  const std::string path = dir.Write("x.jpg", std::string("\0\1binary", 8));
  std::istringstream in("from stdin");
  EXPECT_EQ(*ReadInput(path, in), std::string("\0\1binary", 8));
  EXPECT_EQ(*ReadInput("-", in), "from stdin");
  EXPECT_EQ(ReadInput(dir.path() + "/missing.jpg", in).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(JsonTest, Int64AreNumbersFloatsShortAndStringsEscaped) {
  v1::PredictResponse response;
  auto* p = response.add_predictions();
  p->set_class_index(7);
  p->set_label("Tomato__\"quoted\"\n");
  p->set_probability(0.8785f);
  response.mutable_model()->set_name("demo");
  response.mutable_model()->set_version(int64_t{1} << 40);
  response.mutable_timing()->set_total_us(12345);
  const std::string line = JsonLine(ProtoToJson(response));
  EXPECT_THAT(line, HasSubstr("\"predictions\":[{\"class_index\":7,"));
  EXPECT_THAT(line, HasSubstr("\"probability\":0.8785}"));
  EXPECT_THAT(line, HasSubstr("\"version\":1099511627776"));
  EXPECT_THAT(line, HasSubstr("\"total_us\":12345"));
  EXPECT_THAT(line, HasSubstr(R"("label":"Tomato__\"quoted\"\n")"));
  const Json parsed = Json::parse(line);
  EXPECT_TRUE(parsed["model"]["version"].is_number_integer());
  EXPECT_EQ(parsed["predictions"][0]["label"], "Tomato__\"quoted\"\n");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(JsonTest, MapsSortedEnumsByNameBytesBase64InvalidUtf8Replaced) {
  v1::StatsResponse stats;
  auto* rpc = stats.add_rpcs();
  rpc->set_rpc("Predict");
  (*rpc->mutable_errors_by_code())["NOT_FOUND"] = 2;
  (*rpc->mutable_errors_by_code())["INVALID_ARGUMENT"] = 1;
  stats.add_models()->set_name("bad\xff");
  const std::string line = JsonLine(ProtoToJson(stats));
  EXPECT_THAT(line, HasSubstr(R"("errors_by_code":{"INVALID_ARGUMENT":1,"NOT_FOUND":2})"));
  EXPECT_NO_THROW(Json::parse(line));
  v1::ExplainResponse explain;
  explain.set_method(v1::EXPLAIN_METHOD_HIRES_CAM);
  explain.set_heatmap_png("\x89PNG");
  const Json json = ProtoToJson(explain);
  EXPECT_EQ(json["method"], "EXPLAIN_METHOD_HIRES_CAM");
  EXPECT_EQ(json["heatmap_png"], "iVBORw==");
  EXPECT_FALSE(json.contains("crop_box")) << "unset messages are left out";
}

TEST(LabelsTest, EditDistance) {
  EXPECT_EQ(EditDistance("", ""), 0);
  EXPECT_EQ(EditDistance("abc", ""), 3);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
  EXPECT_EQ(EditDistance("Tomato_healthy", "Tomato__healthy"), 1);
  EXPECT_EQ(EditDistance("TOMATO__HEALTHY", "Tomato__healthy"), 0);
}

TEST(LabelsTest, NearestLabelsSuggestsPlausibleTyposOnly) {
  const std::vector<std::string> labels = {"Potato__healthy", "Tomato__healthy",
                                           "Tomato__early_blight", "Wheat__brown_rust"};
  EXPECT_THAT(NearestLabels("Tomato_healthy", labels),
              ElementsAre("Tomato__healthy", "Potato__healthy"));
  EXPECT_THAT(NearestLabels("tomato healthy", labels, 1), ElementsAre("Tomato__healthy"));
  EXPECT_THAT(NearestLabels("banana", labels), IsEmpty());
}

TEST(HintsTest, LabelHintOnlyForLabelErrors) {
  const std::vector<std::string> labels = {"Tomato__healthy", "Potato__healthy"};
  const absl::Status unknown = absl::InvalidArgumentError(
      "class_label 'Tomato_healthy' is not a label of model cropshield-demo");
  EXPECT_EQ(LabelHint(unknown, "Tomato_healthy", labels),
            "hint: did you mean Tomato__healthy or Potato__healthy?");
  EXPECT_THAT(LabelHint(unknown, "zzzzzzzzzz", labels),
              HasSubstr("labels are Tomato__healthy, Potato__healthy"));
  EXPECT_EQ(LabelHint(absl::UnavailableError("label"), "Tomato_healthy", labels), "");
  EXPECT_EQ(LabelHint(absl::InvalidArgumentError("image.data is empty"), "x", labels), "");
}

TEST(HintsTest, AdminTokenHintNamesTheFlagAndTheVariable) {
  const std::string none = AdminTokenHint(absl::PermissionDeniedError("no credentials"), false);
  EXPECT_THAT(none, HasSubstr("--token"));
  EXPECT_THAT(none, HasSubstr("CROPSHIELD_ADMIN_TOKEN"));
  EXPECT_THAT(AdminTokenHint(absl::UnauthenticatedError("x"), true), HasSubstr("refused"));
  EXPECT_EQ(AdminTokenHint(absl::UnavailableError("down"), false), "");
}

TEST(FilesTest, OverlayEncodingFromTheExtension) {
  EXPECT_EQ(*OverlayEncodingFor("o.png"), v1::IMAGE_ENCODING_PNG);
  EXPECT_EQ(*OverlayEncodingFor("o.JPG"), v1::IMAGE_ENCODING_JPEG);
  EXPECT_EQ(*OverlayEncodingFor("dir.png/o.jpeg"), v1::IMAGE_ENCODING_JPEG);
  for (const char* refused : {"o.webp", "o", "o.gif", "png"}) {
    EXPECT_EQ(OverlayEncodingFor(refused).status().code(), absl::StatusCode::kInvalidArgument)
        << refused;
  }
  EXPECT_TRUE(CheckPngName("h.PNG").ok());
  EXPECT_FALSE(CheckPngName("h.jpg").ok());
}

TEST(ModelsTest, FindModelByNameAndVersion) {
  v1::StatsResponse stats;
  auto* model = stats.add_models();
  model->set_name("cropshield-demo");
  model->set_version(1);
  v1::ModelSpec spec;
  EXPECT_FALSE(IsSet(spec));
  EXPECT_EQ(*FindModel(stats, spec), model);
  spec.set_name("cropshield-demo");
  EXPECT_EQ(*FindModel(stats, spec), model);
  spec.set_version(2);
  EXPECT_EQ(FindModel(stats, spec).status().code(), absl::StatusCode::kNotFound);
  spec.set_version(0);
  spec.set_name("nope");
  EXPECT_THAT(FindModel(stats, spec).status().message(),
              HasSubstr("'nope' is not served (serving cropshield-demo v1)"));
}

TEST(ReplicasTest, LocalhostResolvesThroughGetaddrinfo) {
  absl::StatusOr<std::vector<Replica>> replicas = ResolveReplicas("localhost:50051");
  ASSERT_TRUE(replicas.ok()) << replicas.status();
  ASSERT_FALSE(replicas->empty());
  bool loopback_v4 = false;
  for (const Replica& replica : *replicas) {
    EXPECT_EQ(replica.host, "localhost");
    if (replica.target == "ipv4:127.0.0.1:50051")
      loopback_v4 = replica.address == "127.0.0.1:50051";
    if (replica.target == "ipv6:[::1]:50051") EXPECT_EQ(replica.address, "[::1]:50051");
  }
  EXPECT_TRUE(loopback_v4) << "localhost gives 127.0.0.1 (/etc/hosts)";
  absl::StatusOr<std::vector<Replica>> dns = ResolveReplicas("dns:///localhost:7");
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_EQ(dns->size(), replicas->size());
}

TEST(ReplicasTest, AddressListsLiteralsAndSockets) {
  absl::StatusOr<std::vector<Replica>> list =
      ResolveReplicas("ipv4:10.0.0.1:5,10.0.0.2:5,10.0.0.1:5");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u) << "duplicates removed";
  EXPECT_EQ((*list)[1].target, "ipv4:10.0.0.2:5");
  EXPECT_EQ((*list)[1].host, "");
  absl::StatusOr<std::vector<Replica>> v6 = ResolveReplicas("[::1]:9");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ((*v6)[0].target, "ipv6:[::1]:9");
  EXPECT_EQ((*v6)[0].host, "") << "a literal is no name to check a certificate against";
  EXPECT_EQ((*ResolveReplicas("unix:/tmp/s.sock"))[0].target, "unix:/tmp/s.sock");
}

TEST(ReplicasTest, Refusals) {
  EXPECT_EQ(ResolveReplicas("localhost").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveReplicas("xds:///svc:1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveReplicas("dns://resolver.example/x:1").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ResolveReplicas("no-such-host.invalid:1").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cropshield::cli
