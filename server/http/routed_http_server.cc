#include "server/http/routed_http_server.h"

#include <utility>

namespace cropshield::http {

absl::Status RoutedHttpServer::Start(HttpServer::Options options) {
  auto server = HttpServer::Start(std::move(options), router_.AsHandler());
  if (!server.ok()) return server.status();
  server_ = *std::move(server);
  return absl::OkStatus();
}

void RoutedHttpServer::Shutdown() {
  if (server_ != nullptr) server_->Shutdown();
}

}  // namespace cropshield::http
