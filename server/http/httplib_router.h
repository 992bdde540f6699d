// cpp-httplib as the request parser, router and response writer behind HttpServer's event loop.
//
// The loop receives each complete request (head and Content-Length body) without blocking; the
// router then replays it to cpp-httplib's Server::process_request over an in-memory stream, so
// routes, path parameters, query parsing, multipart form data, HEAD and error pages are
// cpp-httplib's, and its response is sent back by the loop. cpp-httplib's own listener and
// thread pool are never started (see http_server.h for why).
//
// Usage: register handlers on routes() (Get/Post/...), then serve with AsHandler().
//
// Thread-safety: register every route before the first request; after that, Handle and the
// handler from AsHandler may run on any number of threads at once (the handlers must be
// thread-safe). The router must outlive the HttpServer that calls it.
#ifndef CROPSHIELD_SERVER_HTTP_HTTPLIB_ROUTER_H_
#define CROPSHIELD_SERVER_HTTP_HTTPLIB_ROUTER_H_

#include <httplib.h>

#include <memory>

#include "server/http/http_server.h"

namespace cropshield::http {

// The request header entries (one per identity) under which handlers find the identities of a
// client certificate TLS verified. The name holds spaces, which no header on the wire can, and
// any entry a client sent under it is removed first: handlers can trust it.
inline constexpr char kVerifiedIdentityHeader[] = "Cropshield Verified Identity";

class HttplibRouter {
 public:
  HttplibRouter();
  ~HttplibRouter();
  HttplibRouter(const HttplibRouter&) = delete;
  HttplibRouter& operator=(const HttplibRouter&) = delete;

  // Where routes are registered.
  httplib::Server& routes();

  // The response (HttpResponse::serialized) to one complete request.
  HttpResponse Handle(const HttpRequest& request);

  // Handle, as HttpServer's handler.
  HttpServer::Handler AsHandler();

 private:
  class Server;
  std::unique_ptr<Server> server_;
};

}  // namespace cropshield::http

#endif  // CROPSHIELD_SERVER_HTTP_HTTPLIB_ROUTER_H_
