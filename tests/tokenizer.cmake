# tests of decoder/tokenizer: synthetic vocabularies always; the default model
# (LOWBIT_MODEL, else ci/fetch_model.sh's cache) and llama.cpp's golden
# tokenizations (tests/data/llama_cpp_golden.json) when present.
add_executable(lowbit-tokenizer-tests ${CMAKE_CURRENT_LIST_DIR}/test_tokenizer.cpp)
target_include_directories(lowbit-tokenizer-tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(lowbit-tokenizer-tests PRIVATE LOWBIT_TEST_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/data")
target_link_libraries(lowbit-tokenizer-tests PRIVATE lowbit-tokenizer lowbit-gguf lowbit_options GTest::gtest_main)
gtest_discover_tests(lowbit-tokenizer-tests DISCOVERY_MODE PRE_TEST PROPERTIES LABELS tokenizer TIMEOUT 300)
