// Request bodies through HttpServer's loop and cpp-httplib's routing behind it (HttplibRouter):
// Content-Length bodies, "Expect: 100-continue", multipart forms, and the loop's refusals
// (413 before reading, 411 for chunked, 408 for a body that stops, 503 over the body budget).
#include "server/http/httplib_router.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/http/http_test_client.h"

namespace cropshield::http {
namespace {

using http_test::Body;
using http_test::ClosedByServer;
using http_test::Connect;
using http_test::Exchange;
using http_test::Loopback;
using http_test::ReadAll;
using http_test::StartOrDie;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A router whose POST /echo answers "<bytes> <peer ip> <query x>" and POST /form the size of
// the multipart field "image".
class RouterTest : public ::testing::Test {
 protected:
  RouterTest() {
    router_.routes().Post("/echo", [](const httplib::Request& request, httplib::Response& out) {
      out.set_content(absl::StrCat(request.body.size(), " ", request.remote_addr, " ",
                                   request.get_param_value("x")),
                      "text/plain");
    });
    router_.routes().Post("/form", [](const httplib::Request& request, httplib::Response& out) {
      if (!request.has_file("image")) {
        out.status = 400;
        return;
      }
      out.set_content(absl::StrCat(request.get_file_value("image").content.size()), "text/plain");
    });
    router_.routes().Get(
        "/items/(\\d+)", [](const httplib::Request& request, httplib::Response& out) {
          out.set_content(absl::StrCat("item ", request.matches[1].str()), "text/plain");
        });
  }

  std::unique_ptr<HttpServer> Start(HttpServer::Options options) {
    options.allowed_methods = {"GET", "HEAD", "POST"};
    return StartOrDie(std::move(options), router_.AsHandler());
  }

  static HttpServer::Options WithBodies(size_t max_body_bytes) {
    HttpServer::Options options = Loopback();
    options.max_body_bytes = max_body_bytes;
    return options;
  }

  HttplibRouter router_;
};

TEST_F(RouterTest, RoutesPathParametersAndBodies) {
  auto server = Start(WithBodies(1 << 20));
  ASSERT_NE(server, nullptr);
  const std::string body(100000, 'x');
  const std::string echoed = Exchange(
      server->port(),
      absl::StrCat("POST /echo?x=7 HTTP/1.1\r\nContent-Length: ", body.size(), "\r\n\r\n", body));
  EXPECT_THAT(echoed, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(echoed, HasSubstr("Connection: close\r\n"));
  EXPECT_EQ(Body(echoed), "100000 127.0.0.1 7");
  EXPECT_EQ(Body(Exchange(server->port(), "GET /items/42 HTTP/1.1\r\n\r\n")), "item 42");
  EXPECT_THAT(Exchange(server->port(), "GET /nothing HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404 "));
}

TEST_F(RouterTest, ParsesMultipartForms) {
  auto server = Start(WithBodies(1 << 20));
  ASSERT_NE(server, nullptr);
  const std::string part(5000, 'p');
  const std::string form = absl::StrCat(
      "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
      "Content-Type: image/jpeg\r\n\r\n",
      part, "\r\n--XyZ--\r\n");
  const std::string response = Exchange(
      server->port(),
      absl::StrCat("POST /form HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
                   "Content-Length: ",
                   form.size(), "\r\n\r\n", form));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Body(response), "5000");
}

TEST_F(RouterTest, AnswersExpectContinueOnceThenTheResponse) {
  auto server = Start(WithBodies(1 << 20));
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const std::string head =
      "POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
  send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  char interim[64] = {};
  const ssize_t n = recv(fd, interim, sizeof(interim), 0);  // before any body byte is sent
  EXPECT_EQ(std::string(interim, n > 0 ? n : 0), "HTTP/1.1 100 Continue\r\n\r\n");
  send(fd, "hello", 5, MSG_NOSIGNAL);
  const std::string response = ReadAll(fd);
  close(fd);
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(response, ::testing::Not(HasSubstr("100 Continue")));
  EXPECT_EQ(Body(response), "5 127.0.0.1 ");
}

TEST_F(RouterTest, RefusesOversizedChunkedAndBodylessEndpoints) {
  auto server = Start(WithBodies(1000));
  ASSERT_NE(server, nullptr);
  // A 1 GB claim is refused from the head alone, without waiting for any of it.
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const std::string claim = "POST /echo HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n";
  send(fd, claim.data(), claim.size(), MSG_NOSIGNAL);
  EXPECT_THAT(ReadAll(fd), StartsWith("HTTP/1.1 413 Content Too Large\r\n"));
  close(fd);
  EXPECT_THAT(Exchange(server->port(),
                       "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0"
                       "\r\n\r\n"),
              StartsWith("HTTP/1.1 411 "));
  EXPECT_THAT(Exchange(server->port(), "POST /echo HTTP/1.1\r\nContent-Length: 12x\r\n\r\n"),
              StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(Exchange(server->port(), "DELETE /echo HTTP/1.1\r\n\r\n"),
              HasSubstr("Allow: GET, HEAD, POST\r\n"));

  auto bodyless = Start(Loopback());  // max_body_bytes 0
  ASSERT_NE(bodyless, nullptr);
  EXPECT_THAT(Exchange(bodyless->port(), "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
              StartsWith("HTTP/1.1 413 "));
  EXPECT_THAT(Exchange(bodyless->port(), "POST /echo HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
              StartsWith("HTTP/1.1 200 "));
}

TEST_F(RouterTest, ABodyThatStopsArrivingTimesOut) {
  HttpServer::Options options = WithBodies(1000);
  options.body_timeout = absl::Milliseconds(300);
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const std::string partial = "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc";
  send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(ReadAll(fd), StartsWith("HTTP/1.1 408 "));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  close(fd);
}

TEST_F(RouterTest, BodiesInFlightAreBoundedAndTheBudgetComesBack) {
  HttpServer::Options options = WithBodies(1000);
  options.max_buffered_body_bytes = 1500;
  auto server = Start(options);
  ASSERT_NE(server, nullptr);
  // The first upload reserves 1000 of 1500 bytes and stalls half-way.
  const int first = Connect(server->port());
  ASSERT_GE(first, 0);
  const std::string stalled =
      absl::StrCat("POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\n", std::string(500, 'a'));
  send(first, stalled.data(), stalled.size(), MSG_NOSIGNAL);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string second = Exchange(
      server->port(),
      absl::StrCat("POST /echo HTTP/1.1\r\nContent-Length: 600\r\n\r\n", std::string(600, 'b')));
  EXPECT_THAT(second, StartsWith("HTTP/1.1 503 "));
  EXPECT_THAT(second, HasSubstr("Retry-After: 1\r\n"));
  // Finishing the first upload answers it and frees its reservation.
  const std::string rest(500, 'a');
  send(first, rest.data(), rest.size(), MSG_NOSIGNAL);
  EXPECT_EQ(Body(ReadAll(first)), "1000 127.0.0.1 ");
  close(first);
  EXPECT_THAT(Exchange(server->port(), absl::StrCat("POST /echo HTTP/1.1\r\nContent-Length: 600"
                                                    "\r\n\r\n",
                                                    std::string(600, 'b'))),
              StartsWith("HTTP/1.1 200 "));
}

}  // namespace
}  // namespace cropshield::http
