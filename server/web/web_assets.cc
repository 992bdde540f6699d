#include "server/web/web_assets.h"

namespace cropshield::web {

const WebAsset* FindWebAsset(absl::string_view path) {
  if (path == "/") path = "/index.html";
  for (const WebAsset& asset : AllWebAssets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

}  // namespace cropshield::web
