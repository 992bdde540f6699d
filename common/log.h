// Minimal structured logging to stderr: one line per call, written with a single write(2) so lines
// from different threads never interleave.
//
// Thread-safety: all functions may be called from any thread.
#ifndef CROPSHIELD_COMMON_LOG_H_
#define CROPSHIELD_COMMON_LOG_H_

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cropshield {

enum class LogSeverity { kInfo, kWarning, kError };

// Writes "<UTC time> <I|W|E> <message>\n" to stderr, the message escaped by AppendEscapedForLog.
void LogLine(LogSeverity severity, absl::string_view message);

// Appends `text` with every byte below 0x20, DEL and backslash escaped ("\\n", "\\r", "\\\\",
// "\\xHH"), so the result holds no line break. Bytes >= 0x80 (UTF-8) pass unchanged.
void AppendEscapedForLog(absl::string_view text, std::string* out);

}  // namespace cropshield

#define CS_LOG_INFO(...) \
  ::cropshield::LogLine(::cropshield::LogSeverity::kInfo, ::absl::StrCat(__VA_ARGS__))
#define CS_LOG_WARNING(...) \
  ::cropshield::LogLine(::cropshield::LogSeverity::kWarning, ::absl::StrCat(__VA_ARGS__))
#define CS_LOG_ERROR(...) \
  ::cropshield::LogLine(::cropshield::LogSeverity::kError, ::absl::StrCat(__VA_ARGS__))

#endif  // CROPSHIELD_COMMON_LOG_H_
