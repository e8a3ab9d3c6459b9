# decoder/gguf: the GGUF reader and writer. A static library that needs only
# the C++ standard library, POSIX mmap and lowbit/error.hpp, so the fuzzer and
# the tests can compile it on its own. Users include "gguf/gguf.hpp".
add_library(lowbit-gguf STATIC
  ${CMAKE_CURRENT_LIST_DIR}/gguf.cpp
  ${CMAKE_CURRENT_LIST_DIR}/gguf_writer.cpp)
target_include_directories(lowbit-gguf PUBLIC ${PROJECT_SOURCE_DIR}/decoder)
target_link_libraries(lowbit-gguf PUBLIC lowbit PRIVATE lowbit_options)
set_target_properties(lowbit-gguf PROPERTIES POSITION_INDEPENDENT_CODE ON)
