#include "server/rest/request_parts.h"

#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "server/http/httplib_router.h"

namespace cropshield::rest {
namespace {

bool IsRawPhotoType(absl::string_view content_type) {
  const std::string type = absl::AsciiStrToLower(
      absl::StripAsciiWhitespace(content_type.substr(0, content_type.find(';'))));
  return type.empty() || type == "image/jpeg" || type == "image/png" || type == "image/webp" ||
         type == "application/octet-stream";
}

absl::Status MultipartPhoto(const httplib::Request& request, std::string* data) {
  if (request.has_file("image")) {
    *data = request.get_file_value("image").content;
  } else if (request.files.size() == 1) {
    *data = request.files.begin()->second.content;
  } else {
    return absl::InvalidArgumentError(
        "multipart form without a photo: send it in the field \"image\"");
  }
  if (data->empty()) return absl::InvalidArgumentError("the \"image\" field is empty");
  return absl::OkStatus();
}

}  // namespace

absl::Status PhotoOf(const httplib::Request& request, std::string* data) {
  if (request.is_multipart_form_data()) return MultipartPhoto(request, data);
  const std::string content_type = request.get_header_value("Content-Type");
  if (!IsRawPhotoType(content_type)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Content-Type '", content_type,
        "' is not a photo: send image/jpeg, image/png or image/webp, or multipart/form-data"));
  }
  if (request.body.empty()) {
    return absl::InvalidArgumentError(
        "no photo: send it as the request body or as the multipart field \"image\"");
  }
  *data = request.body;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> IntParam(const httplib::Request& request, const char* name,
                                 int64_t fallback, int64_t min, int64_t max) {
  if (!request.has_param(name)) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(request.get_param_value(name), &value) || value < min || value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("query parameter '", name, "' must be an integer in [", min, ", ", max, "]"));
  }
  return value;
}

absl::StatusOr<bool> BoolParam(const httplib::Request& request, const char* name, bool fallback) {
  if (!request.has_param(name)) return fallback;
  const std::string value = absl::AsciiStrToLower(request.get_param_value(name));
  if (value == "true" || value == "1" || value.empty()) return true;
  if (value == "false" || value == "0") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("query parameter '", name, "' must be true or false"));
}

absl::StatusOr<float> FloatParam(const httplib::Request& request, const char* name, float fallback,
                                 float min, float max) {
  if (!request.has_param(name)) return fallback;
  float value = 0;
  if (!absl::SimpleAtof(request.get_param_value(name), &value) || !(value >= min) ||
      !(value <= max)) {
    return absl::InvalidArgumentError(
        absl::StrCat("query parameter '", name, "' must be a number in [", min, ", ", max, "]"));
  }
  return value;
}

absl::Status ReadModelSpec(const httplib::Request& request, cropshield::v1::ModelSpec* spec) {
  spec->set_name(request.get_param_value("model"));
  CS_ASSIGN_OR_RETURN(const int64_t version,
                      IntParam(request, "version", 0, 0, std::numeric_limits<int64_t>::max()));
  spec->set_version(version);
  return absl::OkStatus();
}

std::string RequestIdOf(const httplib::Request& request) {
  if (request.has_param("request_id")) return request.get_param_value("request_id");
  return request.get_header_value("X-Request-Id");
}

core::Caller CallerOf(const httplib::Request& request) {
  core::Caller caller;
  const bool v6 = absl::StrContains(request.remote_addr, ':');
  caller.peer = v6 ? absl::StrCat("ipv6:[", request.remote_addr, "]:", request.remote_port)
                   : absl::StrCat("ipv4:", request.remote_addr, ":", request.remote_port);
  caller.authorization = request.get_header_value("Authorization");
  const size_t identities = request.get_header_value_count(http::kVerifiedIdentityHeader);
  for (size_t i = 0; i < identities; ++i) {
    caller.verified_identities.push_back(
        request.get_header_value(http::kVerifiedIdentityHeader, i));
  }
  return caller;
}

}  // namespace cropshield::rest
