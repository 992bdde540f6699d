// A temporary directory for one test, removed with everything in it when the object goes.
// Header-only: unit and integration tests share it without a library.
#ifndef CROPSHIELD_TESTS_TESTING_TEMP_DIR_H_
#define CROPSHIELD_TESTS_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace cropshield::testing {

class TempDir {
 public:
  // Under gtest's temporary directory, named `prefix` plus a unique suffix; path() is empty when
  // it could not be made.
  explicit TempDir(const std::string& prefix) {
    std::string pattern = ::testing::TempDir() + prefix + "_XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_TESTING_TEMP_DIR_H_
