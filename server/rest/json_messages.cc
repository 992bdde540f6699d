#include "server/rest/json_messages.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace cropshield::rest {
namespace {

using nlohmann::json;
namespace v1 = cropshield::v1;

constexpr std::pair<const char*, v1::ExplainMethod> kMethods[] = {
    {"grad_cam", v1::EXPLAIN_METHOD_GRAD_CAM},
    {"grad_cam_plus_plus", v1::EXPLAIN_METHOD_GRAD_CAM_PLUS_PLUS},
    {"hires_cam", v1::EXPLAIN_METHOD_HIRES_CAM},
    {"layer_cam", v1::EXPLAIN_METHOD_LAYER_CAM},
};
constexpr std::pair<const char*, v1::Colormap> kColormaps[] = {
    {"jet", v1::COLORMAP_JET}, {"turbo", v1::COLORMAP_TURBO}, {"viridis", v1::COLORMAP_VIRIDIS}};

// The value named `name` (any case) in `table`; false if none.
template <typename Enum, size_t N>
bool FindByName(absl::string_view name, const std::pair<const char*, Enum> (&table)[N],
                Enum* value) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const auto& [known, candidate] : table) {
    if (lower == known) {
      *value = candidate;
      return true;
    }
  }
  return false;
}

json PredictionJson(const v1::Prediction& prediction) {
  return {{"class_index", prediction.class_index()},
          {"label", prediction.label()},
          {"probability", prediction.probability()}};
}

json PredictionsJson(const google::protobuf::RepeatedPtrField<v1::Prediction>& predictions) {
  json out = json::array();
  for (const v1::Prediction& prediction : predictions) out.push_back(PredictionJson(prediction));
  return out;
}

json ModelJson(const v1::ModelRef& model) {
  return {{"name", model.name()}, {"version", model.version()}};
}

json TimingJson(const v1::Timing& timing) {
  return {{"decode_us", timing.decode_us()},   {"preprocess_us", timing.preprocess_us()},
          {"queue_us", timing.queue_us()},     {"inference_us", timing.inference_us()},
          {"explain_us", timing.explain_us()}, {"encode_us", timing.encode_us()},
          {"total_us", timing.total_us()}};
}

std::string MethodName(v1::ExplainMethod method) {
  for (const auto& [name, value] : kMethods) {
    if (value == method) return name;
  }
  return "grad_cam";
}

json LatencyJson(const google::protobuf::RepeatedPtrField<v1::LatencySummary>& summaries) {
  json out = json::array();
  for (const v1::LatencySummary& s : summaries) {
    out.push_back({{"name", s.name()},
                   {"count", s.count()},
                   {"p50_us", s.p50_us()},
                   {"p90_us", s.p90_us()},
                   {"p99_us", s.p99_us()}});
  }
  return out;
}

json CacheJson(const v1::CacheStats& cache) {
  return {{"entries", cache.entries()},
          {"bytes", cache.bytes()},
          {"capacity_bytes", cache.capacity_bytes()},
          {"hits", cache.hits()},
          {"misses", cache.misses()},
          {"evictions", cache.evictions()},
          {"hit_ratio", cache.hit_ratio()}};
}

json RpcsJson(const google::protobuf::RepeatedPtrField<v1::RpcCounts>& rpcs) {
  json out = json::array();
  for (const v1::RpcCounts& rpc : rpcs) {
    json errors = json::object();
    for (const auto& [code, count] : rpc.errors_by_code()) errors[code] = count;
    out.push_back({{"rpc", rpc.rpc()}, {"total", rpc.total()}, {"errors_by_code", errors}});
  }
  return out;
}

json ModelsJson(const google::protobuf::RepeatedPtrField<v1::ModelInfo>& models) {
  json out = json::array();
  for (const v1::ModelInfo& model : models) {
    out.push_back(
        {{"name", model.name()},
         {"version", model.version()},
         {"device", model.device()},
         {"precision", model.precision()},
         {"labels", json(std::vector<std::string>(model.labels().begin(), model.labels().end()))}});
  }
  return out;
}

}  // namespace

json PredictJson(const v1::PredictResponse& response) {
  return {{"predictions", PredictionsJson(response.predictions())},
          {"model", ModelJson(response.model())},
          {"timing", TimingJson(response.timing())},
          {"request_id", response.request_id()},
          {"image_width", response.image_width()},
          {"image_height", response.image_height()},
          {"cached", response.cached()}};
}

json ExplainJson(const v1::ExplainResponse& response, absl::string_view overlay_content_type) {
  const v1::CropBox& box = response.crop_box();
  json out = {{"target", PredictionJson(response.target())},
              {"predictions", PredictionsJson(response.predictions())},
              {"method", MethodName(response.method())},
              {"crop_box",
               {{"x", box.x()}, {"y", box.y()}, {"width", box.width()}, {"height", box.height()}}},
              {"cached", response.cached()},
              {"model", ModelJson(response.model())},
              {"timing", TimingJson(response.timing())},
              {"request_id", response.request_id()}};
  if (!response.overlay().empty()) {
    out["overlay"] = {{"content_type", std::string(overlay_content_type)},
                      {"base64", absl::Base64Escape(response.overlay())}};
  }
  if (!response.heatmap_png().empty()) {
    out["heatmap_png"] = absl::Base64Escape(response.heatmap_png());
  }
  return out;
}

json StatsJson(const v1::StatsResponse& response) {
  json out = {{"uptime_seconds", response.uptime_seconds()},
              {"in_flight", response.in_flight()},
              {"models", ModelsJson(response.models())},
              {"rpcs", RpcsJson(response.rpcs())},
              {"rpc_latency", LatencyJson(response.rpc_latency())},
              {"stage_latency", LatencyJson(response.stage_latency())},
              {"explain_cache", CacheJson(response.explain_cache())},
              {"predict_cache", CacheJson(response.predict_cache())}};
  if (response.has_last_model_load()) {
    const v1::ModelLoadStatus& load = response.last_model_load();
    out["last_model_load"] = {{"version", load.version()},
                              {"ok", load.ok()},
                              {"error", load.error()},
                              {"finished_unix_seconds", load.finished_unix_seconds()},
                              {"trigger", load.trigger()}};
  }
  return out;
}

json ClearCacheJson(const v1::ClearCacheResponse& response) {
  return {{"explain_entries_freed", response.explain_entries_freed()},
          {"explain_bytes_freed", response.explain_bytes_freed()},
          {"predict_entries_freed", response.predict_entries_freed()},
          {"predict_bytes_freed", response.predict_bytes_freed()}};
}

bool ParseExplainMethod(absl::string_view name, v1::ExplainMethod* method) {
  return FindByName(name, kMethods, method);
}

bool ParseColormap(absl::string_view name, v1::Colormap* colormap) {
  return FindByName(name, kColormaps, colormap);
}

}  // namespace cropshield::rest
