// JSON output of the CLI, built with nlohmann-json: every string escaped, 64-bit integers as JSON
// numbers (protobuf's JSON printer writes them as strings).
#ifndef CROPSHIELD_CLIENT_CLI_JSON_H_
#define CROPSHIELD_CLIENT_CLI_JSON_H_

#include <nlohmann/json.hpp>

#include "google/protobuf/message.h"

namespace cropshield::cli {

using Json = nlohmann::ordered_json;

// `message` as a JSON object with the proto field names, in declaration order: scalars always
// (defaults included), messages when set, repeated fields as arrays, maps as objects sorted by key,
// enums by name, bytes as base64, 64-bit integers as numbers, floats by their shortest decimal
// form.
Json ProtoToJson(const google::protobuf::Message& message);

// One line of compact JSON; invalid UTF-8 is replaced (U+FFFD), never an exception.
std::string JsonLine(const Json& json);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_JSON_H_
