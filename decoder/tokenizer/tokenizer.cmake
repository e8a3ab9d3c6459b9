# The tokenizer (lowbit-tokenizer): GPT-2 byte-level BPE from GGUF vocabularies.
# Its pre-tokenizer regexes need Unicode categories, so it uses PCRE2 (found
# through pkg-config as libpcre2-8); PCRE2 stays a private dependency and no
# public header includes it.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

add_library(lowbit-tokenizer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/pre_tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/vocabulary_from_gguf.cpp)
target_include_directories(lowbit-tokenizer PUBLIC ${PROJECT_SOURCE_DIR}/decoder)
target_link_libraries(lowbit-tokenizer PUBLIC lowbit-gguf lowbit PRIVATE PkgConfig::PCRE2 lowbit_options)
