// The metrics endpoint: /metrics, /healthz and / through cpp-httplib's routing on HttpServer.
#include "server/metrics/metrics_endpoint.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_registry.h"
#include "server/metrics/server_metrics.h"
#include "tests/unit/http/http_test_client.h"

namespace cropshield::metrics {
namespace {

using http::http_test::Body;
using http::http_test::Exchange;
using http::http_test::Get;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsEndpointTest, ServesTextFormatHealthzAnd404) {
  MetricsRegistry registry;
  ServerMetrics::Options metrics_options;
  metrics_options.rpcs = {"Predict"};
  auto server_metrics = ServerMetrics::Create(metrics_options, &registry.registry());
  ASSERT_TRUE(server_metrics.ok()) << server_metrics.status();
  (*server_metrics)->RecordCall("Predict", absl::StatusCode::kOk, 0.003);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", &registry);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();

  const std::string metrics = Get(port, "/metrics");
  EXPECT_THAT(metrics, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(metrics, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  const std::string body = Body(metrics);
  EXPECT_THAT(body, HasSubstr("# TYPE cropshield_request_duration_seconds histogram\n"));
  EXPECT_THAT(body, HasSubstr("cropshield_requests_total{code=\"OK\",rpc=\"Predict\"} 1\n"));
  EXPECT_THAT(body, HasSubstr("cropshield_request_duration_seconds_bucket{code=\"OK\",rpc="
                              "\"Predict\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(Get(port, "/metrics?x=1"), StartsWith("HTTP/1.1 200 OK\r\n"));

  const std::string healthz = Get(port, "/healthz");
  EXPECT_THAT(healthz, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(Body(healthz), "ok\n");
  EXPECT_THAT(Get(port, "/"), HasSubstr("href=\"/metrics\""));
  EXPECT_THAT(Get(port, "/metricsx"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(Get(port, "/favicon.ico"), StartsWith("HTTP/1.1 404 Not Found\r\n"));
  // HEAD keeps the length and drops the body; other methods and bodies are refused.
  const std::string head = Exchange(port, "HEAD /healthz HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, HasSubstr("Content-Length: 3\r\n"));
  EXPECT_EQ(Body(head), "");
  EXPECT_THAT(Exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
              StartsWith("HTTP/1.1 405 "));
}

}  // namespace
}  // namespace cropshield::metrics
