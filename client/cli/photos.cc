#include "client/cli/photos.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cropshield::cli {
namespace {

namespace fs = std::filesystem;

std::string ReadHead(const fs::path& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string head(bytes, '\0');
  in.read(head.data(), static_cast<std::streamsize>(bytes));
  head.resize(static_cast<size_t>(std::max<std::streamsize>(in.gcount(), 0)));
  return head;
}

absl::Status AppendDirectory(const std::string& dir, ExpandedInputs* out) {
  std::vector<std::string> photos;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const std::string path = entry.path().string();
    if (HasPhotoExtension(path) && HasPhotoSignature(ReadHead(entry.path(), 12))) {
      photos.push_back(path);
    } else {
      out->skipped.push_back(path);
    }
  }
  if (ec) return absl::NotFoundError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  if (photos.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no photos (.jpg, .jpeg, .png, .webp) in directory ", dir));
  }
  std::sort(photos.begin(), photos.end());
  out->paths.insert(out->paths.end(), photos.begin(), photos.end());
  return absl::OkStatus();
}

}  // namespace

bool HasPhotoExtension(absl::string_view path) {
  const std::string lower = absl::AsciiStrToLower(path);
  for (absl::string_view ext : {".jpg", ".jpeg", ".png", ".webp"}) {
    if (absl::EndsWith(lower, ext)) return true;
  }
  return false;
}

bool HasPhotoSignature(absl::string_view head) {
  if (absl::StartsWith(head, "\xFF\xD8\xFF")) return true;       // JPEG SOI + marker
  if (absl::StartsWith(head, "\x89PNG\r\n\x1A\n")) return true;  // PNG
  return head.size() >= 12 && absl::StartsWith(head, "RIFF") &&  // WebP
         head.substr(8, 4) == "WEBP";
}

absl::StatusOr<ExpandedInputs> ExpandInputs(const std::vector<std::string>& args) {
  ExpandedInputs out;
  bool stdin_seen = false;
  for (const std::string& arg : args) {
    if (arg == kStdin) {
      if (stdin_seen) return absl::InvalidArgumentError("'-' (standard input) given twice");
      stdin_seen = true;
      out.paths.push_back(arg);
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(arg, ec)) {
      if (absl::Status status = AppendDirectory(arg, &out); !status.ok()) return status;
    } else {
      out.paths.push_back(arg);
    }
  }
  return out;
}

absl::StatusOr<std::string> ReadInput(const std::string& path, std::istream& in) {
  std::ostringstream buffer;
  if (path == kStdin) {
    buffer << in.rdbuf();
    return buffer.str();
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  buffer << file.rdbuf();
  if (file.bad()) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return buffer.str();
}

}  // namespace cropshield::cli
