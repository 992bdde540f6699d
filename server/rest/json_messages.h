// cropshield.v1 results as the REST front end's JSON (snake_case names as in the .proto, numbers
// as numbers, enums as lower-case names, bytes as base64).
//
// Thread-safety: free functions without shared state.
#ifndef CROPSHIELD_SERVER_REST_JSON_MESSAGES_H_
#define CROPSHIELD_SERVER_REST_JSON_MESSAGES_H_

#include "absl/strings/string_view.h"
#include "cropshield/v1/cropshield.pb.h"
#include "nlohmann/json.hpp"

namespace cropshield::rest {

nlohmann::json PredictJson(const cropshield::v1::PredictResponse& response);
// The overlay (when asked for) as {"content_type", "base64"}, the heatmap PNG as "heatmap_png"
// (base64) when present.
nlohmann::json ExplainJson(const cropshield::v1::ExplainResponse& response,
                           absl::string_view overlay_content_type);
nlohmann::json StatsJson(const cropshield::v1::StatsResponse& response);
nlohmann::json ClearCacheJson(const cropshield::v1::ClearCacheResponse& response);

// "grad_cam", "grad_cam_plus_plus", "hires_cam", "layer_cam" <-> the enum; false if unknown.
bool ParseExplainMethod(absl::string_view name, cropshield::v1::ExplainMethod* method);
// "jet", "turbo", "viridis"; false if unknown.
bool ParseColormap(absl::string_view name, cropshield::v1::Colormap* colormap);

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_JSON_MESSAGES_H_
