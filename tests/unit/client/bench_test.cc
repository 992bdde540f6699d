// The pure parts of `cropshield bench` (client/bench): photo headers, the photo set (masks and
// non-images skipped), sweep lists, Poisson arrivals, percentiles and the CSV/JSON reports. The
// command against a real server is in tests/integration/cli_test.cc.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "client/bench/arrivals.h"
#include "client/bench/lists.h"
#include "client/bench/photo_header.h"
#include "client/bench/photo_set.h"
#include "client/bench/report.h"
#include "client/bench/step_result.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/paths.h"

namespace cropshield::bench {
namespace {

using ::cropshield::testing::kSamples;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadSample(const std::string& name);

TEST(PhotoHeaderTest, ReadsJpegPngAndWebpHeaders) {
  const std::string jpeg = ReadSample("tomato_early_blight_600x800.jpg");
  std::optional<PhotoHeader> header = ReadPhotoHeader(jpeg);
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->format, "jpeg");
  EXPECT_EQ(header->width, 600);
  EXPECT_EQ(header->height, 800);
  EXPECT_EQ(header->channels, 3);
  EXPECT_FALSE(header->greyscale());

  header = ReadPhotoHeader(ReadSample("tomato_early_blight_600x800_mask.png"));
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->format, "png");
  EXPECT_EQ(header->width, 600);
  EXPECT_EQ(header->height, 800);
  EXPECT_TRUE(header->greyscale());

  // A lossless WebP (VP8L) of 3x2: 14-bit width-1 and height-1 after the 0x2f signature.
  const std::string webp("RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\x02\x40\0\0\0\0\0\0\0\0\0\0\0", 33);
  header = ReadPhotoHeader(webp);
  ASSERT_TRUE(header.has_value());
  EXPECT_EQ(header->format, "webp");
  EXPECT_EQ(header->width, 3);
  EXPECT_EQ(header->height, 2);
}

TEST(PhotoHeaderTest, RefusesOtherBytesAndCutHeaders) {
  EXPECT_FALSE(ReadPhotoHeader("").has_value());
  EXPECT_FALSE(ReadPhotoHeader("{\"labels\": []}").has_value());
  EXPECT_FALSE(ReadPhotoHeader(ReadSample("tomato_early_blight_600x800.jpg").substr(0, 20)));
  EXPECT_FALSE(ReadPhotoHeader(std::string("\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR", 16)));
}

TEST(PhotoSetTest, SamplesDirectoryLoadsThePhotosNotTheMasks) {
  absl::StatusOr<PhotoSet> set = LoadPhotoSet({kSamples, "", false});
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->photos.size(), 10u);
  for (const Photo& photo : set->photos) {
    EXPECT_THAT(photo.path, Not(HasSubstr("_mask"))) << photo.path;
    EXPECT_EQ(photo.format, "jpeg");
  }
  EXPECT_EQ(set->skipped.at(kSkippedGreyscale), 10);
  EXPECT_EQ(set->skipped.at(kSkippedNotImage), 1);  // labels.json
  const std::vector<std::string> lines = DescribePhotoSet(*set);
  EXPECT_THAT(lines[0], HasSubstr("photos: 10 loaded from " + kSamples));
  EXPECT_THAT(lines[0], HasSubstr("skipped 11 file(s)"));
  EXPECT_THAT(lines[1], HasSubstr("min 16.0 KiB"));   // wheat_brown_rust, 16430 bytes
  EXPECT_THAT(lines[1], HasSubstr("max 293.5 KiB"));  // sugarcane_red_stripe, 300586 bytes
  EXPECT_THAT(lines[1], HasSubstr("pixels: min 512x512"));
  EXPECT_THAT(lines[1], HasSubstr("max 1600x1200"));
  const nlohmann::json json = PhotoSetJson(*set);
  EXPECT_EQ(json["count"], 10);
  EXPECT_EQ(json["bytes"]["max"], 300586);
  EXPECT_EQ(json["files"].size(), 10u);
}

TEST(PhotoSetTest, FilterAndGreyscaleFlag) {
  absl::StatusOr<PhotoSet> big = LoadPhotoSet({kSamples, "*1600x1200*", false});
  ASSERT_TRUE(big.ok()) << big.status();
  ASSERT_EQ(big->photos.size(), 2u);
  EXPECT_THAT(big->photos[0].path, HasSubstr("potato_early_blight_1600x1200.jpg"));
  EXPECT_EQ(big->skipped.at(kSkippedFilter), 17);
  EXPECT_EQ(big->skipped.at(kSkippedGreyscale), 2);

  absl::StatusOr<PhotoSet> masks = LoadPhotoSet({kSamples, "*_mask.png", true});
  ASSERT_TRUE(masks.ok()) << masks.status();
  EXPECT_EQ(masks->photos.size(), 10u);

  absl::StatusOr<PhotoSet> none = LoadPhotoSet({kSamples, "*.webp", false});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("no photos in"));
  EXPECT_THAT(none.status().message(), HasSubstr("21 name not matching --images_filter"));
  EXPECT_EQ(LoadPhotoSet({kSamples + "/nope.jpg", "", false}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ListsTest, ParsesSweepsAndRefusesBadItems) {
  EXPECT_THAT(*ParseConcurrencyList("1,8,64"), ElementsAre(1, 8, 64));
  EXPECT_THAT(*ParseConcurrencyList("4"), ElementsAre(4));
  for (const char* bad : {"", "0", "0,x", "1,,2", "1.5", "-1", "8,"}) {
    EXPECT_FALSE(ParseConcurrencyList(bad).ok()) << bad;
  }
  EXPECT_THAT(*ParseRateList("20,12.5"), ElementsAre(20, 12.5));
  for (const char* bad : {"", "0", "-5", "x", "inf", "nan", "10,"}) {
    EXPECT_FALSE(ParseRateList(bad).ok()) << bad;
  }
}

TEST(PoissonArrivalsTest, GapsAverageOneOverTheRateAndRepeatPerSeed) {
  PoissonArrivals arrivals(200, 7);
  double total_s = 0, total_sq = 0;
  constexpr int kGaps = 20000;
  for (int i = 0; i < kGaps; ++i) {
    const double s = std::chrono::duration<double>(arrivals.NextGap()).count();
    total_s += s;
    total_sq += s * s;
  }
  const double mean = total_s / kGaps;
  EXPECT_NEAR(mean, 1.0 / 200, 0.05 / 200);
  // Exponential: the standard deviation equals the mean (a fixed interval would have none).
  EXPECT_NEAR(std::sqrt(total_sq / kGaps - mean * mean), mean, 0.1 * mean);
  PoissonArrivals again(200, 7), other(200, 8);
  EXPECT_EQ(again.NextGap(), PoissonArrivals(200, 7).NextGap());
  EXPECT_NE(PoissonArrivals(200, 7).NextGap(), other.NextGap());
}

TEST(StepResultTest, NearestRankPercentiles) {
  std::vector<double> latencies;
  for (int i = 100; i >= 1; --i) latencies.push_back(i);
  const LatencySummary s = Summarize(latencies);
  EXPECT_EQ(s.p50_ms, 50);
  EXPECT_EQ(s.p90_ms, 90);
  EXPECT_EQ(s.p99_ms, 99);
  EXPECT_EQ(s.max_ms, 100);
  EXPECT_DOUBLE_EQ(s.mean_ms, 50.5);
  EXPECT_EQ(Summarize({}).p99_ms, 0);
}

StepResult Step(const std::string& mode, int concurrency, double rate) {
  StepResult step;
  step.mode = mode;
  step.rpc = "predict";
  step.concurrency = concurrency;
  step.open.target_rate = rate;
  step.requests = 12;
  step.ok = 10;
  step.errors = {{"UNAVAILABLE", 2}};
  step.seconds = 2;
  step.throughput = 5;
  step.latency.p50_ms = 3;
  return step;
}

TEST(ReportTest, CsvHasAHeaderAndOneRowPerStepOfEqualWidth) {
  const std::string csv =
      ReportCsv({Step("closed", 1, 0), Step("closed", 8, 0), Step("open", 0, 20)});
  const std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << csv;
  EXPECT_THAT(lines[0], HasSubstr("mode,rpc,concurrency,rate,requests,ok,errors"));
  const size_t columns = std::count(lines[0].begin(), lines[0].end(), ',');
  for (const std::string& line : lines)
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), columns);
  EXPECT_THAT(lines[1], HasSubstr("closed,predict,1,,12,10,2,"));
  EXPECT_THAT(lines[3], HasSubstr("open,predict,,20,12,10,2,"));
}

TEST(ReportTest, JsonKeepsTheOneStepKeysAndListsEveryStep) {
  PhotoSet photos;
  photos.photos.push_back({"a.jpg", "xyz", "jpeg", 4, 3});
  const nlohmann::json one = ReportJson({{"rpc", "predict"}}, photos, {Step("closed", 8, 0)});
  EXPECT_EQ(one["concurrency"], 8);
  EXPECT_EQ(one["p50_ms"], 3);
  EXPECT_EQ(one["errors"]["UNAVAILABLE"], 2);
  EXPECT_EQ(one["steps"].size(), 1u);
  EXPECT_EQ(one["photos"]["count"], 1);
  const nlohmann::json two = ReportJson({}, photos, {Step("closed", 1, 0), Step("closed", 8, 0)});
  EXPECT_FALSE(two.contains("p50_ms"));
  EXPECT_EQ(two["steps"][1]["concurrency"], 8);
  const nlohmann::json open = StepJson(Step("open", 0, 20));
  EXPECT_EQ(open["rate"], 20);
  EXPECT_TRUE(open.contains("dropped"));
  EXPECT_TRUE(open.contains("late"));
  EXPECT_THAT(TableRow(Step("open", 0, 20)), HasSubstr("errors: UNAVAILABLE=2"));
}

std::string ReadSample(const std::string& name) {
  std::ifstream in(kSamples + "/" + name, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace
}  // namespace cropshield::bench
