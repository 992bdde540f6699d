#include "client/bench/photo_set.h"

#include <fnmatch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/bench/photo_header.h"

namespace cropshield::bench {
namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream data;
  data << in.rdbuf();
  if (in.bad()) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  return data.str();
}

Photo MakePhoto(std::string path, std::string bytes) {
  Photo photo{std::move(path), std::move(bytes), "", 0, 0};
  if (std::optional<PhotoHeader> header = ReadPhotoHeader(photo.bytes)) {
    photo.format = header->format;
    photo.width = header->width;
    photo.height = header->height;
  }
  return photo;
}

// The reason `path` is skipped, or "" to load it (then `photo` holds it).
std::string Select(const PhotoSelection& selection, const fs::path& path, Photo* photo) {
  const std::string name = path.filename().string();
  if (!selection.name_filter.empty() &&
      fnmatch(selection.name_filter.c_str(), name.c_str(), 0) != 0) {
    return kSkippedFilter;
  }
  absl::StatusOr<std::string> bytes = ReadWholeFile(path.string());
  if (!bytes.ok()) return kSkippedUnreadable;
  const std::optional<PhotoHeader> header = ReadPhotoHeader(*bytes);
  if (!header) return kSkippedNotImage;
  if (header->greyscale() && !selection.keep_greyscale) return kSkippedGreyscale;
  *photo = MakePhoto(path.string(), *std::move(bytes));
  return "";
}

absl::Status LoadDirectory(const PhotoSelection& selection, PhotoSet* set) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(selection.path, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    Photo photo;
    const std::string reason = Select(selection, entry.path(), &photo);
    if (reason.empty()) {
      set->photos.push_back(std::move(photo));
    } else {
      ++set->skipped[reason];
    }
  }
  if (ec)
    return absl::NotFoundError(absl::StrCat("cannot list ", selection.path, ": ", ec.message()));
  std::sort(set->photos.begin(), set->photos.end(),
            [](const Photo& a, const Photo& b) { return a.path < b.path; });
  return absl::OkStatus();
}

std::string SkippedText(const PhotoSet& set) {
  std::vector<std::string> parts;
  int64_t total = 0;
  for (const auto& [reason, count] : set.skipped) {
    parts.push_back(absl::StrCat(count, " ", reason));
    total += count;
  }
  if (total == 0) return "skipped none";
  return absl::StrCat("skipped ", total, " file(s): ", absl::StrJoin(parts, ", "));
}

std::string Bytes(int64_t n) {
  if (n < 1024) return absl::StrCat(n, " B");
  if (n < 1024 * 1024) return absl::StrFormat("%.1f KiB", n / 1024.0);
  return absl::StrFormat("%.2f MiB", n / (1024.0 * 1024.0));
}

// Lower median (an element of the set, so a real photo's size).
template <typename T, typename Less>
std::vector<T> MinMedianMax(std::vector<T> values, Less less) {
  std::stable_sort(values.begin(), values.end(), less);  // ties: the first by path
  return {values.front(), values[(values.size() - 1) / 2], values.back()};
}

std::vector<int64_t> ByteStats(const PhotoSet& set) {
  std::vector<int64_t> sizes;
  for (const Photo& photo : set.photos) sizes.push_back(static_cast<int64_t>(photo.bytes.size()));
  return MinMedianMax(sizes, std::less<int64_t>());
}

std::vector<const Photo*> PixelStats(const PhotoSet& set) {
  std::vector<const Photo*> photos;
  for (const Photo& photo : set.photos) photos.push_back(&photo);
  return MinMedianMax(photos, [](const Photo* a, const Photo* b) {
    return int64_t{a->width} * a->height < int64_t{b->width} * b->height;
  });
}

std::string Pixels(const Photo& photo) {
  return photo.width > 0 ? absl::StrCat(photo.width, "x", photo.height) : "unknown";
}

}  // namespace

absl::StatusOr<PhotoSet> LoadPhotoSet(const PhotoSelection& selection) {
  PhotoSet set;
  set.source = selection.path;
  std::error_code ec;
  if (fs::is_directory(selection.path, ec)) {
    if (absl::Status status = LoadDirectory(selection, &set); !status.ok()) return status;
  } else {
    absl::StatusOr<std::string> bytes = ReadWholeFile(selection.path);
    if (!bytes.ok()) return bytes.status();
    set.photos.push_back(MakePhoto(selection.path, *std::move(bytes)));
  }
  if (set.photos.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no photos in ", selection.path, " (", SkippedText(set), ")"));
  }
  return set;
}

std::vector<std::string> DescribePhotoSet(const PhotoSet& set) {
  const std::vector<int64_t> bytes = ByteStats(set);
  const std::vector<const Photo*> pixels = PixelStats(set);
  return {
      absl::StrCat("photos: ", set.photos.size(), " loaded from ", set.source, "; ",
                   SkippedText(set)),
      absl::StrCat("photo bytes: min ", Bytes(bytes[0]), ", median ", Bytes(bytes[1]), ", max ",
                   Bytes(bytes[2]), "; pixels: min ", Pixels(*pixels[0]), ", median ",
                   Pixels(*pixels[1]), ", max ", Pixels(*pixels[2])),
  };
}

nlohmann::json PhotoSetJson(const PhotoSet& set) {
  const std::vector<int64_t> bytes = ByteStats(set);
  const std::vector<const Photo*> pixels = PixelStats(set);
  nlohmann::json files = nlohmann::json::array();
  for (const Photo& photo : set.photos) {
    files.push_back({{"path", photo.path},
                     {"bytes", photo.bytes.size()},
                     {"format", photo.format},
                     {"width", photo.width},
                     {"height", photo.height}});
  }
  return {
      {"source", set.source},
      {"count", set.photos.size()},
      {"skipped", set.skipped},
      {"bytes", {{"min", bytes[0]}, {"median", bytes[1]}, {"max", bytes[2]}}},
      {"pixels",
       {{"min", Pixels(*pixels[0])}, {"median", Pixels(*pixels[1])}, {"max", Pixels(*pixels[2])}}},
      {"files", files}};
}

}  // namespace cropshield::bench
