// An HttplibRouter served by its own HttpServer: what an endpoint (metrics, REST) holds.
//
// Usage: register handlers on routes(), then Start once. Destruction shuts the server down before
// the routes go, so no handler runs against a destroyed router.
//
// Thread-safety: routes() and Start before serving, from one thread; port() and Shutdown() from any
// thread after a successful Start.
#ifndef CROPSHIELD_SERVER_HTTP_ROUTED_HTTP_SERVER_H_
#define CROPSHIELD_SERVER_HTTP_ROUTED_HTTP_SERVER_H_

#include <memory>

#include "absl/status/status.h"
#include "server/http/http_server.h"
#include "server/http/httplib_router.h"

namespace cropshield::http {

class RoutedHttpServer {
 public:
  RoutedHttpServer() = default;
  ~RoutedHttpServer() { Shutdown(); }
  RoutedHttpServer(const RoutedHttpServer&) = delete;
  RoutedHttpServer& operator=(const RoutedHttpServer&) = delete;

  httplib::Server& routes() { return router_.routes(); }

  // Starts serving the routes on options.address (its handler is the router's).
  absl::Status Start(HttpServer::Options options);

  int port() const { return server_->port(); }
  // Stops accepting and lets the requests being handled finish; idempotent, and a no-op before a
  // successful Start.
  void Shutdown();

 private:
  HttplibRouter router_;
  std::unique_ptr<HttpServer> server_;  // after router_: stops before it goes
};

}  // namespace cropshield::http

#endif  // CROPSHIELD_SERVER_HTTP_ROUTED_HTTP_SERVER_H_
