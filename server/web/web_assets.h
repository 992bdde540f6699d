// The web page served at / of the HTTP port: index.html, app.js and app.css from
// server/web/assets, compiled into the binary at build time (server/web/embed_assets.cmake).
//
// Thread-safety: the assets are immutable static data; every function may be called from any
// thread at any time, including during static initialisation of other translation units.
#ifndef CROPSHIELD_SERVER_WEB_WEB_ASSETS_H_
#define CROPSHIELD_SERVER_WEB_WEB_ASSETS_H_

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace cropshield::web {

struct WebAsset {
  // Serve path, e.g. "/index.html" or "/static/app.js".
  absl::string_view path;
  // Value of the Content-Type header, e.g. "text/html; charset=utf-8".
  absl::string_view content_type;
  // The file's bytes.
  absl::string_view body;
};

// The asset served at `path` ("/" means "/index.html"; others "/static/app.js" etc.), or nullptr.
// The path is matched exactly: no query string, no percent-decoding, no "..".
const WebAsset* FindWebAsset(absl::string_view path);

// Every asset (for tests and size checks), index.html first.
absl::Span<const WebAsset> AllWebAssets();

}  // namespace cropshield::web

#endif  // CROPSHIELD_SERVER_WEB_WEB_ASSETS_H_
