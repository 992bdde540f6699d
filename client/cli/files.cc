#include "client/cli/files.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cropshield::cli {

absl::StatusOr<v1::ImageEncoding> OverlayEncodingFor(absl::string_view path) {
  const std::string lower = absl::AsciiStrToLower(path);
  if (absl::EndsWith(lower, ".png")) return v1::IMAGE_ENCODING_PNG;
  if (absl::EndsWith(lower, ".jpg") || absl::EndsWith(lower, ".jpeg")) {
    return v1::IMAGE_ENCODING_JPEG;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--overlay=", path,
                   ": the server encodes overlays as PNG or JPEG only; name the file .png, .jpg "
                   "or .jpeg"));
}

absl::Status CheckPngName(absl::string_view path) {
  if (absl::EndsWith(absl::AsciiStrToLower(path), ".png")) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--out=", path, ": the heatmap is a PNG image; name the file .png"));
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  out.close();
  if (!out) return absl::PermissionDeniedError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status WriteFloatMap(const std::string& path, const v1::FloatMap& map) {
  if (!absl::EndsWith(path, ".npy")) return WriteFile(path, map.data());
  std::string header = absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (",
                                    map.height(), ", ", map.width(), "), }");
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string file("\x93NUMPY\x01\x00", 8);
  file.push_back(static_cast<char>(header.size() & 0xff));
  file.push_back(static_cast<char>(header.size() >> 8));
  file += header;
  file += map.data();
  return WriteFile(path, file);
}

}  // namespace cropshield::cli
