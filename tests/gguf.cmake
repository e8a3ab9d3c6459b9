# Tests of decoder/gguf, and its libFuzzer target (Clang only).
add_executable(lowbit-gguf-tests ${CMAKE_CURRENT_LIST_DIR}/test_gguf.cpp)
target_link_libraries(lowbit-gguf-tests PRIVATE lowbit-gguf lowbit lowbit_options GTest::gtest_main)
target_include_directories(lowbit-gguf-tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(lowbit-gguf-tests PRIVATE LOWBIT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
gtest_discover_tests(lowbit-gguf-tests DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 120)

# The fuzzer compiles the reader's sources itself, so they get the fuzzer's
# coverage instrumentation and ASan/UBSan whatever the rest of the build uses.
# Run it with ci/fuzz.sh.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
  set(CMAKE_REQUIRED_LINK_OPTIONS "-fsanitize=fuzzer")
  check_cxx_source_compiles(
    "#include <cstddef>\n#include <cstdint>\nextern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }"
    LOWBIT_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  unset(CMAKE_REQUIRED_LINK_OPTIONS)
  if(LOWBIT_HAVE_LIBFUZZER)
    add_executable(lowbit-gguf-fuzz
      ${CMAKE_CURRENT_LIST_DIR}/fuzz/fuzz_gguf.cpp
      ${PROJECT_SOURCE_DIR}/decoder/gguf/gguf.cpp)
    target_include_directories(lowbit-gguf-fuzz PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/decoder)
    target_compile_features(lowbit-gguf-fuzz PRIVATE cxx_std_20)
    target_compile_options(lowbit-gguf-fuzz PRIVATE
      -Wall -Wextra $<$<BOOL:${LOWBIT_WERROR}>:-Werror>
      -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(lowbit-gguf-fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  endif()
endif()
