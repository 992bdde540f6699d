// Paths the integration tests share: the source tree (demo model, samples) and the binaries under
// test, from the compile definitions each test target sets (tests/integration/CMakeLists.txt).
#ifndef CROPSHIELD_TESTS_TESTING_PATHS_H_
#define CROPSHIELD_TESTS_TESTING_PATHS_H_

#include <string>

namespace cropshield::testing {

#ifdef CROPSHIELD_SOURCE_DIR
inline const std::string kSourceDir = CROPSHIELD_SOURCE_DIR;
inline const std::string kDemoRepository = kSourceDir + "/models/repository";
inline const std::string kSamples = kSourceDir + "/models/samples";
#endif
#ifdef CROPSHIELD_SERVER_BINARY
inline const std::string kServer = CROPSHIELD_SERVER_BINARY;
#endif
#ifdef CROPSHIELD_CLI_BINARY
inline const std::string kCli = CROPSHIELD_CLI_BINARY;
#endif

}  // namespace cropshield::testing

#endif  // CROPSHIELD_TESTS_TESTING_PATHS_H_
