// The web page's files (server/web), compiled into the binary.
#include "server/rest/rest_front_end.h"
#include "server/web/web_assets.h"

namespace cropshield::rest {

void RestFrontEnd::AddWebRoutes(httplib::Server& routes) {
  auto serve = [](const httplib::Request& request, httplib::Response& response) {
    const web::WebAsset* asset = web::FindWebAsset(request.path);
    if (asset == nullptr) {
      response.status = 404;
      return;
    }
    // Nothing but this origin: the page works offline and cannot be made to load other code.
    response.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                        "frame-ancestors 'none'");
    response.set_header("X-Content-Type-Options", "nosniff");
    response.set_header("Cache-Control", "no-cache");
    response.set_content(std::string(asset->body), std::string(asset->content_type));
  };
  routes.Get("/", serve);
  routes.Get(R"(/static/[A-Za-z0-9_.-]+)", serve);
}

}  // namespace cropshield::rest
