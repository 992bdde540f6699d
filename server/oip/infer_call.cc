#include "server/oip/infer_call.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace cropshield::oip {

void InferCounters::Record(bool ok, int64_t photos, int64_t elapsed_ns) {
  (ok ? success_count_ : fail_count_).fetch_add(1, std::memory_order_relaxed);
  (ok ? success_ns_ : fail_ns_)
      .fetch_add(static_cast<uint64_t>(elapsed_ns), std::memory_order_relaxed);
  if (!ok) return;
  photos_.fetch_add(static_cast<uint64_t>(photos), std::memory_order_relaxed);
  last_inference_ms_.store(static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())),
                           std::memory_order_relaxed);
}

void InferCounters::Fill(inference::ModelStatistics* stats) const {
  auto load = [](const std::atomic<uint64_t>& value) {
    return value.load(std::memory_order_relaxed);
  };
  stats->set_last_inference(load(last_inference_ms_));
  stats->set_inference_count(load(photos_));
  // Each successful ModelInfer counts as one execution: the core's batcher may group its photos
  // with other calls' photos, which this front end does not see.
  stats->set_execution_count(load(success_count_));
  auto* infer = stats->mutable_inference_stats();
  infer->mutable_success()->set_count(load(success_count_));
  infer->mutable_success()->set_ns(load(success_ns_));
  infer->mutable_fail()->set_count(load(fail_count_));
  infer->mutable_fail()->set_ns(load(fail_ns_));
}

// The core's Responder for one photo: the call's deadline, cancellation and byte holder.
class InferCall::PhotoResponder final : public core::Responder {
 public:
  PhotoResponder(InferCall* call, size_t index) : call_(call), index_(index) {}
  bool IsCancelled() const override {
    return call_->failed_.load(std::memory_order_acquire) || call_->responder_->IsCancelled();
  }
  absl::Time deadline() const override { return call_->responder_->deadline(); }
  void Hold(ByteBudget::Reservation reservation) override {
    call_->responder_->Hold(std::move(reservation));
  }
  void Finish(const absl::Status& status) override { call_->PhotoDone(index_, status); }

 private:
  InferCall* const call_;
  const size_t index_;
};

InferCall::InferCall(const inference::ModelInferRequest& request, cropshield::v1::ModelSpec spec,
                     int num_classes, InferPlan plan, inference::ModelInferResponse* response,
                     core::Responder* responder, InferCounters* counters)
    : id_(request.id()),
      num_classes_(num_classes),
      plan_(std::move(plan)),
      response_(response),
      responder_(responder),
      counters_(counters),
      requests_(plan_.photos.size()),
      answers_(plan_.photos.size()),
      remaining_(plan_.photos.size() + 1) {
  for (size_t i = 0; i < plan_.photos.size(); ++i) {
    requests_[i].mutable_image()->set_data(plan_.photos[i].data(), plan_.photos[i].size());
    requests_[i].set_top_k(num_classes);
    *requests_[i].mutable_model() = spec;
    photo_responders_.push_back(std::make_unique<PhotoResponder>(this, i));
  }
}

InferCall::~InferCall() = default;

void InferCall::Start(core::InferenceCore* core, const inference::ModelInferRequest& request,
                      cropshield::v1::ModelSpec spec, int num_classes, InferPlan plan,
                      inference::ModelInferResponse* response, core::Responder* responder,
                      InferCounters* counters) {
  auto* call = new InferCall(request, std::move(spec), num_classes, std::move(plan), response,
                             responder, counters);
  call->Launch(core);  // the call may be complete, and deleted, when this returns
}

void InferCall::Launch(core::InferenceCore* core) {
  for (size_t i = 0; i < requests_.size(); ++i) {
    if (failed_.load(std::memory_order_acquire)) {
      Release();  // an earlier photo failed: the call's answer is known, skip the rest
    } else {
      core->Predict(requests_[i], &answers_[i], photo_responders_[i].get());
    }
  }
  Release();
}

void InferCall::PhotoDone(size_t index, const absl::Status& status) {
  if (!status.ok()) {
    absl::MutexLock lock(&mu_);
    if (first_error_.ok()) {
      first_error_ =
          absl::Status(status.code(), absl::StrCat("photo ", index, ": ", status.message()));
      failed_.store(true, std::memory_order_release);
    }
  }
  Release();
}

void InferCall::Release() {
  if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) Complete();
}

void InferCall::Complete() {
  absl::Status status;
  {
    absl::MutexLock lock(&mu_);
    status = first_error_;
  }
  if (status.ok()) {
    response_->set_model_name(answers_[0].model().name());
    response_->set_model_version(absl::StrCat(answers_[0].model().version()));
    response_->set_id(id_);
    FillInferOutputs(plan_, num_classes_, answers_, response_);
  }
  counters_->Record(status.ok(), static_cast<int64_t>(answers_.size()),
                    received_.ElapsedMicros() * 1000);
  core::Responder* responder = responder_;
  delete this;  // the photos' copies go before the response is sent
  responder->Finish(status);
}

}  // namespace cropshield::oip
