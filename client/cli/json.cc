#include "client/cli/json.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "google/protobuf/descriptor.h"

namespace cropshield::cli {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// The double nearest to the shortest decimal that reads back as `value` (0.8785f prints as 0.8785,
// not 0.878499984741211).
double FloatAsDouble(float value) {
  char text[64];
  const std::to_chars_result result = std::to_chars(text, text + sizeof(text), value);
  *result.ptr = '\0';
  return std::strtod(text, nullptr);
}

Json EnumJson(const google::protobuf::EnumValueDescriptor* value, int number) {
  if (value != nullptr) return value->name();
  return number;
}

Json ScalarJson(const Message& message, const FieldDescriptor* field) {
  const Reflection* r = message.GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return r->GetInt32(message, field);
    case FieldDescriptor::CPPTYPE_INT64:
      return r->GetInt64(message, field);
    case FieldDescriptor::CPPTYPE_UINT32:
      return r->GetUInt32(message, field);
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->GetUInt64(message, field);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return r->GetDouble(message, field);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FloatAsDouble(r->GetFloat(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetBool(message, field);
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumJson(r->GetEnum(message, field), r->GetEnumValue(message, field));
    case FieldDescriptor::CPPTYPE_STRING:
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        return absl::Base64Escape(r->GetString(message, field));
      }
      return r->GetString(message, field);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return ProtoToJson(r->GetMessage(message, field));
  }
  return nullptr;
}

Json RepeatedElementJson(const Message& message, const FieldDescriptor* field, int i) {
  const Reflection* r = message.GetReflection();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return r->GetRepeatedInt32(message, field, i);
    case FieldDescriptor::CPPTYPE_INT64:
      return r->GetRepeatedInt64(message, field, i);
    case FieldDescriptor::CPPTYPE_UINT32:
      return r->GetRepeatedUInt32(message, field, i);
    case FieldDescriptor::CPPTYPE_UINT64:
      return r->GetRepeatedUInt64(message, field, i);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return r->GetRepeatedDouble(message, field, i);
    case FieldDescriptor::CPPTYPE_FLOAT:
      return FloatAsDouble(r->GetRepeatedFloat(message, field, i));
    case FieldDescriptor::CPPTYPE_BOOL:
      return r->GetRepeatedBool(message, field, i);
    case FieldDescriptor::CPPTYPE_ENUM:
      return EnumJson(r->GetRepeatedEnum(message, field, i),
                      r->GetRepeatedEnumValue(message, field, i));
    case FieldDescriptor::CPPTYPE_STRING:
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        return absl::Base64Escape(r->GetRepeatedString(message, field, i));
      }
      return r->GetRepeatedString(message, field, i);
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return ProtoToJson(r->GetRepeatedMessage(message, field, i));
  }
  return nullptr;
}

// A map field (repeated entries with `key` and `value`) as an object sorted by key.
Json MapJson(const Message& message, const FieldDescriptor* field) {
  const Reflection* r = message.GetReflection();
  std::vector<std::pair<std::string, Json>> entries;
  for (int i = 0; i < r->FieldSize(message, field); ++i) {
    const Message& entry = r->GetRepeatedMessage(message, field, i);
    const FieldDescriptor* key = entry.GetDescriptor()->map_key();
    const FieldDescriptor* value = entry.GetDescriptor()->map_value();
    Json key_json = ScalarJson(entry, key);
    entries.emplace_back(key_json.is_string() ? key_json.get<std::string>() : key_json.dump(),
                         ScalarJson(entry, value));
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  Json object = Json::object();
  for (auto& [key, value] : entries) object[key] = std::move(value);
  return object;
}

}  // namespace

Json ProtoToJson(const Message& message) {
  Json object = Json::object();
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  const Reflection* r = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_map()) {
      object[field->name()] = MapJson(message, field);
    } else if (field->is_repeated()) {
      Json array = Json::array();
      for (int j = 0; j < r->FieldSize(message, field); ++j) {
        array.push_back(RepeatedElementJson(message, field, j));
      }
      object[field->name()] = std::move(array);
    } else if (field->has_presence() && !r->HasField(message, field)) {
      continue;  // unset messages and oneof members
    } else {
      object[field->name()] = ScalarJson(message, field);
    }
  }
  return object;
}

std::string JsonLine(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace cropshield::cli
