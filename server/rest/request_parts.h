// Reading the parts of a REST request the front end needs: the photo (raw body or multipart
// field), integer/boolean/float query parameters, and the caller (peer and Authorization).
//
// Thread-safety: free functions without shared state.
#ifndef CROPSHIELD_SERVER_REST_REQUEST_PARTS_H_
#define CROPSHIELD_SERVER_REST_REQUEST_PARTS_H_

#include <httplib.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cropshield/v1/cropshield.pb.h"
#include "server/core/call.h"

namespace cropshield::rest {

// The photo of `request` into `*data`: the body when its Content-Type is image/jpeg, image/png,
// image/webp, application/octet-stream or absent; multipart/form-data field "image" (else its
// one file). FAILED_PRECONDITION for another Content-Type (HTTP 415), INVALID_ARGUMENT when there
// is no photo.
absl::Status PhotoOf(const httplib::Request& request, std::string* data);

// Query parameter `name` as an integer in [min, max]; `fallback` when absent.
absl::StatusOr<int64_t> IntParam(const httplib::Request& request, const char* name,
                                 int64_t fallback, int64_t min, int64_t max);
// "true"/"1"/"false"/"0"; `fallback` when absent.
absl::StatusOr<bool> BoolParam(const httplib::Request& request, const char* name, bool fallback);
// A float in [min, max]; `fallback` when absent.
absl::StatusOr<float> FloatParam(const httplib::Request& request, const char* name, float fallback,
                                 float min, float max);

// The model (query "model", "version") and request_id (query "request_id" or header
// "X-Request-Id") every /v1 call may name.
absl::Status ReadModelSpec(const httplib::Request& request, cropshield::v1::ModelSpec* spec);
std::string RequestIdOf(const httplib::Request& request);

// The peer as gRPC spells it ("ipv4:127.0.0.1:5555", "ipv6:[::1]:5555"), the Authorization
// header and the identities of a client certificate TLS verified: what admin checks see.
core::Caller CallerOf(const httplib::Request& request);

}  // namespace cropshield::rest

#endif  // CROPSHIELD_SERVER_REST_REQUEST_PARTS_H_
