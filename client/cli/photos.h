// The photos a `cropshield predict` call names: files, directories (the photos inside) and "-"
// (standard input).
#ifndef CROPSHIELD_CLIENT_CLI_PHOTOS_H_
#define CROPSHIELD_CLIENT_CLI_PHOTOS_H_

#include <istream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cropshield::cli {

// The name that stands for standard input.
inline constexpr absl::string_view kStdin = "-";

// True when `path` ends in .jpg, .jpeg, .png or .webp (any case).
bool HasPhotoExtension(absl::string_view path);

// True when `head` (the first bytes of a file, 12 are enough) starts like a JPEG, PNG or WebP.
bool HasPhotoSignature(absl::string_view head);

struct ExpandedInputs {
  // Files to send, in order: named files as given, each directory's photos sorted by name, and
  // kStdin where "-" was given.
  std::vector<std::string> paths;
  // Files left out of directories because they are not photos (by extension or content).
  std::vector<std::string> skipped;
};

// Expands `args`: a directory becomes the photos directly inside it (sorted; files without a photo
// extension or signature skipped, subdirectories ignored); files and "-" stay as they are (a named
// file is sent whatever it holds: the server judges it). Errors: INVALID_ARGUMENT when "-" is
// given twice; NOT_FOUND when a directory holds no photo.
absl::StatusOr<ExpandedInputs> ExpandInputs(const std::vector<std::string>& args);

// The bytes of `path`, or of `in` for kStdin. NOT_FOUND when the file cannot be read.
absl::StatusOr<std::string> ReadInput(const std::string& path, std::istream& in);

}  // namespace cropshield::cli

#endif  // CROPSHIELD_CLIENT_CLI_PHOTOS_H_
