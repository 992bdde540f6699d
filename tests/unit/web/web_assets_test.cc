#include "server/web/web_assets.h"

#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace cropshield::web {
namespace {

struct Expected {
  const char* path;
  const char* content_type;
  const char* file;
};

constexpr Expected kExpected[] = {
    {"/index.html", "text/html; charset=utf-8", "index.html"},
    {"/static/app.js", "text/javascript; charset=utf-8", "app.js"},
    {"/static/app.css", "text/css; charset=utf-8", "app.css"},
};

std::string ReadSource(const char* name) {
  std::ifstream in(absl::StrCat(CROPSHIELD_WEB_ASSETS_DIR, "/", name), std::ios::binary);
  EXPECT_TRUE(in.good()) << name;
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(WebAssetsTest, EachAssetHasItsContentTypeAndTheSourceFileBytes) {
  for (const Expected& expected : kExpected) {
    SCOPED_TRACE(expected.path);
    const WebAsset* asset = FindWebAsset(expected.path);
    ASSERT_NE(asset, nullptr);
    EXPECT_EQ(asset->path, expected.path);
    EXPECT_EQ(asset->content_type, expected.content_type);
    const std::string source = ReadSource(expected.file);
    EXPECT_FALSE(source.empty());
    EXPECT_TRUE(asset->body == source)
        << "embedded " << asset->body.size() << " bytes, source " << source.size();
  }
  EXPECT_EQ(AllWebAssets().size(), std::size(kExpected));
}

TEST(WebAssetsTest, RootIsIndexHtml) {
  const WebAsset* root = FindWebAsset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root, FindWebAsset("/index.html"));
  EXPECT_TRUE(absl::StartsWith(root->body, "<!DOCTYPE html>"));
}

TEST(WebAssetsTest, UnknownPathsAreNotFound) {
  for (const char* path :
       {"", "/static/", "/static/missing.js", "/app.js", "index.html", "/static/app.js?v=1",
        "/static/../index.html", "/INDEX.HTML", "/static/app.css/", "//", "/favicon.ico"}) {
    EXPECT_EQ(FindWebAsset(path), nullptr) << path;
  }
}

TEST(WebAssetsTest, PageReferencesOnlyEmbeddedAssets) {
  const absl::string_view html = FindWebAsset("/")->body;
  EXPECT_TRUE(absl::StrContains(html, "src=\"/static/app.js\""));
  EXPECT_TRUE(absl::StrContains(html, "href=\"/static/app.css\""));
  for (const WebAsset& asset : AllWebAssets()) {
    SCOPED_TRACE(asset.path);
    EXPECT_FALSE(absl::StrContains(asset.body, "http://"));
    EXPECT_FALSE(absl::StrContains(asset.body, "https://"));
    EXPECT_FALSE(absl::StrContains(asset.body, "//cdn"));
  }
}

TEST(WebAssetsTest, TotalSizeIsUnder200KB) {
  size_t total = 0;
  for (const WebAsset& asset : AllWebAssets()) total += asset.body.size();
  EXPECT_GT(total, 0u);
  EXPECT_LT(total, 200u * 1024);
}

}  // namespace
}  // namespace cropshield::web
