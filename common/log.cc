#include "common/log.h"

#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cropshield {

void AppendEscapedForLog(absl::string_view text, std::string* out) {
  constexpr char kHex[] = "0123456789abcdef";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f && byte != '\\') {
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\\') {
      out->append("\\\\");
    } else {
      out->append({'\\', 'x', kHex[byte >> 4], kHex[byte & 0xf]});
    }
  }
}

void LogLine(LogSeverity severity, absl::string_view message) {
  char tag = 'I';
  if (severity == LogSeverity::kWarning) tag = 'W';
  if (severity == LogSeverity::kError) tag = 'E';
  std::string line =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()), " ",
                   std::string(1, tag), " ");
  // Messages carry caller-controlled text (request ids, status messages): control characters are
  // escaped so that no caller can forge or split a log line.
  AppendEscapedForLog(message, &line);
  line.push_back('\n');
  size_t written = 0;
  while (written < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + written, line.size() - written);
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
}

}  // namespace cropshield
