// Where the tests find the default model (SmolLM2-135M-Instruct, Q4_1), and
// whether its absence is a failure.
//
// ci/fetch_model.sh caches the model and ci/test.sh exports LOWBIT_MODEL; a
// developer running a test binary by hand gets the same cache location. Tests
// that need the model skip without it, unless LOWBIT_REQUIRE_MODEL=1 (CI).
#pragma once

#include <cstdlib>
#include <string>

namespace lowbit::test {

/// LOWBIT_REQUIRE_MODEL=1: a missing model (or golden file) fails the test.
inline bool model_required() {
  const char* value = std::getenv("LOWBIT_REQUIRE_MODEL");
  return value && std::string(value) == "1";
}

/// LOWBIT_MODEL, else the file in ci/fetch_model.sh's cache directory
/// (LOWBIT_MODEL_DIR, else $XDG_CACHE_HOME/lowbit, else ~/.cache/lowbit).
inline std::string default_model_path() {
  if (const char* path = std::getenv("LOWBIT_MODEL"); path && *path) return path;
  std::string directory;
  if (const char* d = std::getenv("LOWBIT_MODEL_DIR"); d && *d) {
    directory = d;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    directory = std::string(x) + "/lowbit";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    directory = std::string(h) + "/.cache/lowbit";
  }
  return directory + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

}  // namespace lowbit::test
