// The photos `cropshield bench` sends: loaded once, before any call, from one file or from the
// files directly inside a directory. In a directory only photos are kept: files that are not
// JPEG/PNG/WebP (by content, not extension), greyscale images (the lesion masks next to the
// samples) unless asked for, and names the filter glob does not match are skipped and counted.
//
// Thread safety: LoadPhotoSet and the Describe functions are reentrant; a PhotoSet is a value,
// safe to read from any number of threads once loaded.
#ifndef CROPSHIELD_CLIENT_BENCH_PHOTO_SET_H_
#define CROPSHIELD_CLIENT_BENCH_PHOTO_SET_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace cropshield::bench {

struct Photo {
  std::string path;
  std::string bytes;
  std::string format;  // "jpeg", "png", "webp"; empty when a named file's header is unknown
  int width = 0;
  int height = 0;
};

// Why a directory entry was not loaded (the keys of PhotoSet::skipped).
inline constexpr char kSkippedNotImage[] = "not a JPEG, PNG or WebP";
inline constexpr char kSkippedGreyscale[] = "greyscale (a mask, not a photo)";
inline constexpr char kSkippedFilter[] = "name not matching --images_filter";
inline constexpr char kSkippedUnreadable[] = "unreadable";

struct PhotoSelection {
  std::string path;         // a file or a directory
  std::string name_filter;  // fnmatch(3) glob on a directory entry's file name; empty: all
  bool keep_greyscale = false;
};

struct PhotoSet {
  std::string source;
  std::vector<Photo> photos;               // sorted by path
  std::map<std::string, int64_t> skipped;  // reason -> files
};

// Loads the selection. A named file is loaded as given (the server judges it), a directory's
// entries as described above (subdirectories are not searched). INVALID_ARGUMENT when nothing is
// left to send (the message says what was skipped), NOT_FOUND when the path cannot be read.
absl::StatusOr<PhotoSet> LoadPhotoSet(const PhotoSelection& selection);

// Lines for the start of a run: how many photos from where, what was skipped and why, their byte
// sizes (min/median/max) and pixel sizes (min/median/max by area).
std::vector<std::string> DescribePhotoSet(const PhotoSet& set);

// The same as JSON, with one entry per photo (path, bytes, format, width, height).
nlohmann::json PhotoSetJson(const PhotoSet& set);

}  // namespace cropshield::bench

#endif  // CROPSHIELD_CLIENT_BENCH_PHOTO_SET_H_
