#include "server/metrics/build_info.h"

#include <regex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_registry.h"

namespace cropshield::metrics {
namespace {

using ::testing::HasSubstr;

TEST(BuildInfoTest, OneGaugeOfValueOneWithTheBuildInLabels) {
  MetricsRegistry registry;
  MetricsRegistry::Registration registration =
      registry.Add(MakeBuildInfoCollector({"0.1.0", "abc1234", "1.13.0", "cuda:0"}));
  const std::string text = registry.SerializeText();
  EXPECT_THAT(text, HasSubstr("# TYPE cropshield_build_info gauge\n"));
  EXPECT_THAT(text, HasSubstr("cropshield_build_info{device=\"cuda:0\",revision=\"abc1234\","
                              "torch_version=\"1.13.0\",version=\"0.1.0\"} 1\n"));
}

TEST(BuildInfoTest, MissingFieldsReadUnknown) {
  MetricsRegistry registry;
  MetricsRegistry::Registration registration = registry.Add(MakeBuildInfoCollector({}));
  EXPECT_THAT(registry.SerializeText(),
              HasSubstr("cropshield_build_info{device=\"unknown\",revision=\"unknown\","
                        "torch_version=\"unknown\",version=\"unknown\"} 1\n"));
}

TEST(BuildInfoTest, CompiledInfoHasTheProjectVersionAndARevision) {
  const BuildInfo info = CompiledBuildInfo();
  EXPECT_TRUE(std::regex_match(info.version, std::regex("[0-9]+\\.[0-9]+\\.[0-9]+")))
      << info.version;
  // A short hash in a git checkout (this tree is one), "unknown" elsewhere.
  EXPECT_TRUE(std::regex_match(info.revision, std::regex("[0-9a-f]{4,40}|unknown")))
      << info.revision;
  EXPECT_TRUE(info.torch_version.empty());
}

}  // namespace
}  // namespace cropshield::metrics
