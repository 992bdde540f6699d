// The inference core on its own, without any gRPC: a real TorchScript model (the bundled demo
// package), real caches, batchers and workers, and a Responder that records what the core answers.
#include "server/core/inference_core.h"

#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace cropshield::core {
namespace {

using ::testing::HasSubstr;

const std::string kRepository = std::string(CROPSHIELD_SOURCE_DIR) + "/models/repository";
const std::string kSamples = std::string(CROPSHIELD_SOURCE_DIR) + "/models/samples";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Records the core's answer; the test waits for it.
class RecordingResponder final : public Responder {
 public:
  bool IsCancelled() const override { return cancelled; }
  absl::Time deadline() const override { return deadline_at; }
  void Hold(ByteBudget::Reservation reservation) override {
    held.push_back(std::move(reservation));
  }
  void Finish(const absl::Status& status) override {
    ++finishes;
    promise.set_value(status);
  }
  absl::Status Wait() { return future.get(); }

  bool cancelled = false;
  absl::Time deadline_at = absl::InfiniteFuture();
  std::vector<ByteBudget::Reservation> held;
  int finishes = 0;
  std::promise<absl::Status> promise;
  std::future<absl::Status> future = promise.get_future();
};

class InferenceCoreTest : public ::testing::Test {
 protected:
  // A core serving the demo package's highest version, loaded through its model manager.
  std::unique_ptr<InferenceCore> MakeCore(CoreOptions options = {}) {
    options.models.model_path = kRepository;
    options.models.load_options.device = "cpu";
    options.models.load_options.warmup_iterations = 1;
    options.models.load_options.max_batch_size =
        std::max(options.max_batch_size, options.explain_max_batch_size);
    auto core = InferenceCore::Create(options, &metrics_);
    EXPECT_TRUE(core.ok()) << core.status();
    if (!core.ok()) return nullptr;
    auto loaded = (*core)->model_manager()->LoadNow(0);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return *std::move(core);
  }

  static cropshield::v1::PredictRequest PredictOf(const std::string& file) {
    cropshield::v1::PredictRequest request;
    request.mutable_image()->set_data(ReadFile(kSamples + "/" + file));
    return request;
  }

  // count and sum of the core's batch size histogram for `batcher`.
  std::pair<uint64_t, double> BatchSizes(const std::string& batcher) {
    for (const prometheus::MetricFamily& family : metrics_.Collect()) {
      if (family.name != "cropshield_batch_size") continue;
      for (const prometheus::ClientMetric& metric : family.metric) {
        for (const prometheus::ClientMetric::Label& label : metric.label) {
          if (label.name == "batcher" && label.value == batcher) {
            return {metric.histogram.sample_count, metric.histogram.sample_sum};
          }
        }
      }
    }
    return {0, 0};
  }

  metrics::MetricsRegistry metrics_;
};

TEST_F(InferenceCoreTest, PredictAnswersTopKWithModelAndRequestId) {
  std::unique_ptr<InferenceCore> core = MakeCore();
  cropshield::v1::PredictRequest request = PredictOf("potato_healthy_640x480.jpg");
  request.set_request_id("req-1");
  request.set_top_k(5);
  cropshield::v1::PredictResponse response;
  RecordingResponder responder;
  core->Predict(request, &response, &responder);
  ASSERT_TRUE(responder.Wait().ok());
  EXPECT_EQ(responder.finishes, 1);
  ASSERT_EQ(response.predictions_size(), 5);
  EXPECT_GE(response.predictions(0).probability(), response.predictions(1).probability());
  EXPECT_EQ(response.request_id(), "req-1");
  EXPECT_EQ(response.model().version(), 1);
  EXPECT_EQ(response.image_width(), 640);
  EXPECT_EQ(response.image_height(), 480);
  EXPECT_GT(response.timing().inference_us(), 0);
  // The encoded photo and the model input stay reserved until the front end lets go.
  EXPECT_FALSE(responder.held.empty());
  EXPECT_EQ(core->InFlight(), 0);
}

TEST_F(InferenceCoreTest, ConcurrentPredictsShareOneForward) {
  CoreOptions options;
  options.max_batch_size = 4;
  options.max_queue_delay_us = 2'000'000;  // the batch closes when full, long before this
  options.workers = 2;
  std::unique_ptr<InferenceCore> core = MakeCore(options);
  const auto before = BatchSizes("predict");
  const cropshield::v1::PredictRequest request = PredictOf("potato_healthy_640x480.jpg");
  std::vector<cropshield::v1::PredictResponse> responses(4);
  std::vector<RecordingResponder> responders(4);
  for (int i = 0; i < 4; ++i) core->Predict(request, &responses[i], &responders[i]);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(responders[i].Wait().ok()) << i;
  const auto after = BatchSizes("predict");
  EXPECT_EQ(after.first - before.first, 1u);          // one batch
  EXPECT_DOUBLE_EQ(after.second - before.second, 4);  // of four calls
  for (const auto& response : responses) {
    EXPECT_EQ(response.predictions(0).class_index(), responses[0].predictions(0).class_index());
  }
}

TEST_F(InferenceCoreTest, ExplainIsCachedAndBypassRecomputes) {
  std::unique_ptr<InferenceCore> core = MakeCore();
  cropshield::v1::ExplainRequest request;
  request.mutable_image()->set_data(ReadFile(kSamples + "/potato_late_blight_800x600.jpg"));
  request.mutable_outputs()->set_heatmap_png(true);
  auto explain = [&](bool bypass) {
    request.set_bypass_cache(bypass);
    cropshield::v1::ExplainResponse response;
    RecordingResponder responder;
    core->Explain(request, &response, &responder);
    EXPECT_TRUE(responder.Wait().ok());
    return response;
  };
  const cropshield::v1::ExplainResponse first = explain(false);
  const cropshield::v1::ExplainResponse second = explain(false);
  const cropshield::v1::ExplainResponse third = explain(true);
  EXPECT_FALSE(first.cached());
  EXPECT_TRUE(second.cached());
  EXPECT_FALSE(third.cached());
  EXPECT_FALSE(first.heatmap_png().empty());
  EXPECT_EQ(second.heatmap_png(), first.heatmap_png());
  EXPECT_EQ(second.target().class_index(), first.target().class_index());
}

TEST_F(InferenceCoreTest, ExpiredAndCancelledCallsAreDroppedBeforeWork) {
  std::unique_ptr<InferenceCore> core = MakeCore();
  const cropshield::v1::PredictRequest request = PredictOf("potato_healthy_640x480.jpg");
  cropshield::v1::PredictResponse expired_response;
  RecordingResponder expired;
  expired.deadline_at = absl::Now() - absl::Seconds(1);
  core->Predict(request, &expired_response, &expired);
  EXPECT_EQ(expired.Wait().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(expired_response.predictions_size(), 0);

  cropshield::v1::PredictResponse cancelled_response;
  RecordingResponder cancelled;
  cancelled.cancelled = true;
  core->Predict(request, &cancelled_response, &cancelled);
  EXPECT_EQ(cancelled.Wait().code(), absl::StatusCode::kCancelled);
}

TEST_F(InferenceCoreTest, RefusalsNameTheirCause) {
  std::unique_ptr<InferenceCore> core = MakeCore();
  cropshield::v1::PredictRequest request = PredictOf("potato_healthy_640x480.jpg");
  request.set_request_id("bad\nid");
  cropshield::v1::PredictResponse response;
  RecordingResponder bad_id;
  core->Predict(request, &response, &bad_id);
  EXPECT_EQ(bad_id.Wait().code(), absl::StatusCode::kInvalidArgument);

  request.set_request_id("");
  request.mutable_model()->set_name("no-such-model");
  RecordingResponder unknown_model;
  core->Predict(request, &response, &unknown_model);
  EXPECT_EQ(unknown_model.Wait().code(), absl::StatusCode::kNotFound);

  RecordingResponder not_admin;
  cropshield::v1::ClearCacheResponse cleared;
  core->ClearCache({}, Caller{"ipv4:10.0.0.7:4242", "", {}}, &cleared, &not_admin);
  EXPECT_EQ(not_admin.Wait().code(), absl::StatusCode::kPermissionDenied);
}

// A typo in the model name or version is an error, not a success that freed nothing.
TEST_F(InferenceCoreTest, ClearCacheOfAModelNotServedIsNotFound) {
  CoreOptions options;
  options.admin.token = "secret";
  std::unique_ptr<InferenceCore> core = MakeCore(options);
  const Caller admin{"ipv4:10.0.0.7:4242", "Bearer secret", {}};
  auto clear = [&](const std::string& name, int64_t version) {
    cropshield::v1::ClearCacheRequest request;
    request.mutable_model()->set_name(name);
    request.mutable_model()->set_version(version);
    cropshield::v1::ClearCacheResponse response;
    RecordingResponder responder;
    core->ClearCache(request, admin, &response, &responder);
    return responder.Wait();
  };
  const absl::Status unknown_model = clear("cropshield-dmeo", 0);
  EXPECT_EQ(unknown_model.code(), absl::StatusCode::kNotFound) << unknown_model;
  EXPECT_THAT(std::string(unknown_model.message()), HasSubstr("'cropshield-dmeo' is not served"));
  const absl::Status unknown_version = clear("", 7);
  EXPECT_EQ(unknown_version.code(), absl::StatusCode::kNotFound) << unknown_version;
  EXPECT_THAT(std::string(unknown_version.message()), HasSubstr("version 7 is not served"));
  EXPECT_EQ(clear("", -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(clear("cropshield-demo", 0).ok());
  EXPECT_TRUE(clear("", 1).ok());
}

TEST_F(InferenceCoreTest, NoModelInstalledIsUnavailable) {
  CoreOptions options;  // no model path: nothing is loaded
  auto core = InferenceCore::Create(options, &metrics_);
  ASSERT_TRUE(core.ok()) << core.status();
  const cropshield::v1::PredictRequest request = PredictOf("potato_healthy_640x480.jpg");
  cropshield::v1::PredictResponse response;
  RecordingResponder responder;
  (*core)->Predict(request, &response, &responder);
  EXPECT_EQ(responder.Wait().code(), absl::StatusCode::kUnavailable);
}

// A repository with versions 1 and 2 of the demo model (the same weights).
std::string TwoVersionRepository() {
  const std::string root = ::testing::TempDir() + "/core_two_versions";
  const std::string model = root + "/cropshield-demo";
  std::filesystem::create_directories(model);
  for (const char* version : {"1", "2"}) {
    std::filesystem::copy(kRepository + "/cropshield-demo/1", model + "/" + version,
                          std::filesystem::copy_options::recursive |
                              std::filesystem::copy_options::overwrite_existing);
  }
  // Each version's metadata names its own version.
  const std::string metadata = model + "/2/model.json";
  std::string json = ReadFile(metadata);
  const size_t at = json.find("\"version\": 1");
  if (at != std::string::npos) json.replace(at, 12, "\"version\": 2");
  std::ofstream(metadata, std::ios::binary | std::ios::trunc) << json;
  return root;
}

// Reloads queued while a load runs are answered in order, Predicts keep succeeding throughout,
// and the retired version's cache entries go with it.
TEST_F(InferenceCoreTest, ReloadDuringLoadKeepsServing) {
  CoreOptions options;
  options.admin.token = "secret";
  options.predict_cache_bytes = 1 << 20;
  options.models.model_path = TwoVersionRepository();
  options.models.load_options.device = "cpu";
  options.models.load_options.warmup_iterations = 1;
  auto created = InferenceCore::Create(options, &metrics_);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<InferenceCore> core = *std::move(created);
  ASSERT_TRUE(core->model_manager()->LoadNow(1).ok());
  const cropshield::v1::PredictRequest request = PredictOf("potato_healthy_640x480.jpg");
  auto predict = [&] {
    cropshield::v1::PredictResponse response;
    RecordingResponder responder;
    core->Predict(request, &response, &responder);
    EXPECT_TRUE(responder.Wait().ok());
    return response;
  };
  EXPECT_EQ(predict().model().version(), 1);
  EXPECT_TRUE(predict().cached());

  const Caller admin{"ipv4:10.0.0.7:4242", "Bearer secret", {}};
  std::vector<RecordingResponder> reloads(2);
  std::vector<cropshield::v1::ReloadModelRequest> reload_requests(2);
  std::vector<cropshield::v1::ReloadModelResponse> reload_responses(2);
  reload_requests[0].set_version(2);  // the second is queued while the first loads
  reload_requests[1].set_version(1);
  for (int i = 0; i < 2; ++i) {
    core->ReloadModel(reload_requests[i], admin, &reload_responses[i], &reloads[i]);
  }
  auto ready = [](RecordingResponder& r) {
    return r.future.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready;
  };
  int predicted = 0;
  do {
    EXPECT_GE(predict().model().version(), 1);
    ++predicted;
  } while (!ready(reloads[1]));
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(reloads[i].Wait().ok()) << i;
  EXPECT_GT(predicted, 1);
  EXPECT_EQ(reload_responses[0].previous().version(), 1);
  EXPECT_EQ(reload_responses[0].current().version(), 2);
  EXPECT_TRUE(reload_responses[1].reloaded());
  EXPECT_EQ(reload_responses[1].current().version(), 1);

  // With no call in flight, a swap drops every entry of the version it retires. (A call that
  // resolved the old version just before a swap may put its entry back after the drop: start
  // from an empty cache.)
  RecordingResponder cleared;
  cropshield::v1::ClearCacheResponse cleared_response;
  core->ClearCache({}, admin, &cleared_response, &cleared);
  ASSERT_TRUE(cleared.Wait().ok());
  EXPECT_EQ(predict().model().version(), 1);
  EXPECT_TRUE(predict().cached());
  RecordingResponder to_v2;
  cropshield::v1::ReloadModelResponse to_v2_response;
  core->ReloadModel(reload_requests[0], admin, &to_v2_response, &to_v2);
  ASSERT_TRUE(to_v2.Wait().ok());
  cropshield::v1::StatsResponse stats;
  RecordingResponder stats_responder;
  core->Stats(admin, &stats, &stats_responder);
  ASSERT_TRUE(stats_responder.Wait().ok());
  EXPECT_EQ(stats.predict_cache().entries(), 0);
  const cropshield::v1::PredictResponse after = predict();
  EXPECT_EQ(after.model().version(), 2);
  EXPECT_FALSE(after.cached());

  // The retired version 1 may still be cleared (a call over the swap can leave an entry); a
  // version never loaded here cannot.
  auto clear_version = [&](int64_t version) {
    cropshield::v1::ClearCacheRequest request;
    request.mutable_model()->set_version(version);
    cropshield::v1::ClearCacheResponse response;
    RecordingResponder responder;
    core->ClearCache(request, admin, &response, &responder);
    return responder.Wait().code();
  };
  EXPECT_EQ(clear_version(1), absl::StatusCode::kOk);
  EXPECT_EQ(clear_version(2), absl::StatusCode::kOk);
  EXPECT_EQ(clear_version(3), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace cropshield::core
