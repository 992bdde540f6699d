// The /v1 routes: Predict, Explain, ClearCache and Stats of cropshield.v1 over HTTP/JSON.
#include <string>

#include "common/status_macros.h"
#include "server/rest/http_status.h"
#include "server/rest/json_messages.h"
#include "server/rest/request_parts.h"
#include "server/rest/rest_front_end.h"
#include "server/rest/waiting_responder.h"

namespace cropshield::rest {
namespace {

namespace v1 = cropshield::v1;
constexpr char kJson[] = "application/json";

absl::Status ReadPredict(const httplib::Request& request, v1::PredictRequest* call) {
  CS_RETURN_IF_ERROR(PhotoOf(request, call->mutable_image()->mutable_data()));
  CS_ASSIGN_OR_RETURN(const int64_t top_k, IntParam(request, "top_k", 0, 0, 1000));
  call->set_top_k(static_cast<int>(top_k));
  CS_RETURN_IF_ERROR(ReadModelSpec(request, call->mutable_model()));
  call->set_request_id(RequestIdOf(request));
  return absl::OkStatus();
}

// Which overlay the caller wants: "Accept: image/png|image/jpeg" asks for the image itself.
struct OverlayChoice {
  bool image_body = false;
  v1::ImageEncoding encoding = v1::IMAGE_ENCODING_PNG;
};

absl::StatusOr<OverlayChoice> ReadOverlayChoice(const httplib::Request& request) {
  OverlayChoice choice;
  const std::string accept = request.get_header_value("Accept");
  if (accept == "image/png" || accept == "image/jpeg") {
    choice.image_body = true;
    choice.encoding = accept == "image/png" ? v1::IMAGE_ENCODING_PNG : v1::IMAGE_ENCODING_JPEG;
    return choice;
  }
  const std::string format = request.get_param_value("overlay");
  if (format == "jpeg" || format == "jpg") {
    choice.encoding = v1::IMAGE_ENCODING_JPEG;
  } else if (!format.empty() && format != "png") {
    return absl::InvalidArgumentError("query parameter 'overlay' must be png or jpeg");
  }
  return choice;
}

absl::Status ReadExplainOptions(const httplib::Request& request, v1::ExplainRequest* call) {
  if (request.has_param("method")) {
    v1::ExplainMethod method;
    if (!ParseExplainMethod(request.get_param_value("method"), &method)) {
      return absl::InvalidArgumentError(
          "query parameter 'method' must be grad_cam, grad_cam_plus_plus, hires_cam or layer_cam");
    }
    call->set_method(method);
  }
  v1::ExplainOutputs* outputs = call->mutable_outputs();
  if (request.has_param("colormap")) {
    v1::Colormap colormap;
    if (!ParseColormap(request.get_param_value("colormap"), &colormap)) {
      return absl::InvalidArgumentError("query parameter 'colormap' must be jet, turbo or viridis");
    }
    outputs->set_colormap(colormap);
  }
  CS_ASSIGN_OR_RETURN(const float alpha, FloatParam(request, "alpha", 0, 0, 1));
  outputs->set_overlay_alpha(alpha);
  CS_ASSIGN_OR_RETURN(const int64_t quality, IntParam(request, "jpeg_quality", 0, 0, 100));
  outputs->set_jpeg_quality(static_cast<int>(quality));
  CS_ASSIGN_OR_RETURN(const bool heatmap, BoolParam(request, "heatmap", false));
  outputs->set_heatmap_png(heatmap);
  CS_ASSIGN_OR_RETURN(const bool bypass, BoolParam(request, "bypass_cache", false));
  call->set_bypass_cache(bypass);
  return absl::OkStatus();
}

absl::Status ReadExplainTarget(const httplib::Request& request, v1::ExplainRequest* call) {
  if (request.has_param("class_label")) {
    call->set_class_label(request.get_param_value("class_label"));
  } else if (request.has_param("class_index")) {
    CS_ASSIGN_OR_RETURN(const int64_t index, IntParam(request, "class_index", 0, 0, 100000));
    call->set_class_index(static_cast<int>(index));
  }
  CS_ASSIGN_OR_RETURN(const int64_t top_k, IntParam(request, "top_k", 0, 0, 1000));
  call->set_top_k(static_cast<int>(top_k));
  return absl::OkStatus();
}

absl::Status ReadExplain(const httplib::Request& request, const OverlayChoice& overlay,
                         v1::ExplainRequest* call) {
  CS_RETURN_IF_ERROR(PhotoOf(request, call->mutable_image()->mutable_data()));
  CS_RETURN_IF_ERROR(ReadExplainOptions(request, call));
  CS_RETURN_IF_ERROR(ReadExplainTarget(request, call));
  call->mutable_outputs()->set_overlay(true);
  call->mutable_outputs()->set_overlay_encoding(overlay.encoding);
  CS_RETURN_IF_ERROR(ReadModelSpec(request, call->mutable_model()));
  call->set_request_id(RequestIdOf(request));
  return absl::OkStatus();
}

absl::Status ReadClearCache(const httplib::Request& request, v1::ClearCacheRequest* call) {
  CS_RETURN_IF_ERROR(ReadModelSpec(request, call->mutable_model()));
  CS_ASSIGN_OR_RETURN(const bool explain, BoolParam(request, "explain_cache", false));
  CS_ASSIGN_OR_RETURN(const bool predict, BoolParam(request, "predict_cache", false));
  call->set_explain_cache(explain);
  call->set_predict_cache(predict);
  return absl::OkStatus();
}

// A request the front end could not translate: 415 for a body that is not a photo, else the
// status's own code.
void FailRequest(const absl::Status& status, httplib::Response& response) {
  WriteError(status, 0, response);
  if (absl::IsFailedPrecondition(status)) response.status = 415;
}

}  // namespace

void RestFrontEnd::AddV1Routes(httplib::Server& routes) {
  routes.Post("/v1/predict", [this](const httplib::Request& request, httplib::Response& response) {
    Predict(request, response);
  });
  routes.Post("/v1/explain", [this](const httplib::Request& request, httplib::Response& response) {
    Explain(request, response);
  });
  routes.Post("/v1/cache:clear",
              [this](const httplib::Request& request, httplib::Response& response) {
                ClearCache(request, response);
              });
  routes.Get("/v1/stats", [this](const httplib::Request& request, httplib::Response& response) {
    Stats(request, response);
  });
}

void RestFrontEnd::Predict(const httplib::Request& request, httplib::Response& response) {
  v1::PredictRequest call;
  if (absl::Status read = ReadPredict(request, &call); !read.ok()) {
    return FailRequest(read, response);
  }
  v1::PredictResponse answer;
  absl::Status done = CallAndWait(DeadlineFor(request), [&](core::Responder* responder) {
    core_->Predict(call, &answer, responder);
  });
  if (!done.ok()) return Fail(done, response);
  response.set_content(Dump(PredictJson(answer)), kJson);
}

void RestFrontEnd::Explain(const httplib::Request& request, httplib::Response& response) {
  absl::StatusOr<OverlayChoice> overlay = ReadOverlayChoice(request);
  if (!overlay.ok()) return FailRequest(overlay.status(), response);
  v1::ExplainRequest call;
  if (absl::Status read = ReadExplain(request, *overlay, &call); !read.ok()) {
    return FailRequest(read, response);
  }
  v1::ExplainResponse answer;
  absl::Status done = CallAndWait(DeadlineFor(request), [&](core::Responder* responder) {
    core_->Explain(call, &answer, responder);
  });
  if (!done.ok()) return Fail(done, response);
  const char* type = overlay->encoding == v1::IMAGE_ENCODING_PNG ? "image/png" : "image/jpeg";
  if (overlay->image_body) {
    response.set_header("X-Cached", answer.cached() ? "true" : "false");
    response.set_header("X-Target-Label", answer.target().label());
    response.set_content(answer.overlay(), type);
    return;
  }
  response.set_content(Dump(ExplainJson(answer, type)), kJson);
}

void RestFrontEnd::ClearCache(const httplib::Request& request, httplib::Response& response) {
  v1::ClearCacheRequest call;
  if (absl::Status read = ReadClearCache(request, &call); !read.ok()) {
    return FailRequest(read, response);
  }
  v1::ClearCacheResponse answer;
  absl::Status done = CallAndWait(DeadlineFor(request), [&](core::Responder* responder) {
    core_->ClearCache(call, CallerOf(request), &answer, responder);
  });
  if (!done.ok()) return Fail(done, response);
  response.set_content(Dump(ClearCacheJson(answer)), kJson);
}

void RestFrontEnd::Stats(const httplib::Request& request, httplib::Response& response) {
  v1::StatsResponse answer;
  absl::Status done = CallAndWait(DeadlineFor(request), [&](core::Responder* responder) {
    core_->Stats(CallerOf(request), &answer, responder);
  });
  if (!done.ok()) return Fail(done, response);
  response.set_content(Dump(StatsJson(answer)), kJson);
}

}  // namespace cropshield::rest
