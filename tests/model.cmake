# tests of decoder/model: the model suite runs once per x86/arm tier with
# LOWBIT_ISA_MAX set, so the whole decoder is checked on every kernel tier the
# host runs; a tier the CPU lacks skips with the reason (test_model.cpp).
add_executable(lowbit-model-tests ${CMAKE_CURRENT_LIST_DIR}/test_model.cpp)
target_include_directories(lowbit-model-tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(lowbit-model-tests PRIVATE LOWBIT_TEST_DATA_DIR="${CMAKE_CURRENT_LIST_DIR}/data")
target_link_libraries(lowbit-model-tests PRIVATE lowbit-model lowbit_options GTest::gtest_main)
if(LOWBIT_SANITIZE)
  # Under ASan/UBSan the point is the decoder's own memory safety, which does
  # not depend on the tier: one run on the best tier keeps the stage short.
  set(model_test_tiers "")
  gtest_discover_tests(lowbit-model-tests DISCOVERY_MODE PRE_TEST PROPERTIES LABELS model TIMEOUT 900)
elseif(LOWBIT_ARCH STREQUAL "x86")
  set(model_test_tiers scalar avx2 avx2_vnni avx512 avx512_vnni)
elseif(LOWBIT_ARCH STREQUAL "arm")
  set(model_test_tiers scalar neon dotprod i8mm)
else()
  set(model_test_tiers scalar)
endif()
foreach(tier IN LISTS model_test_tiers)
  gtest_discover_tests(lowbit-model-tests TEST_SUFFIX ".${tier}" DISCOVERY_MODE PRE_TEST
    PROPERTIES ENVIRONMENT "LOWBIT_ISA_MAX=${tier}" LABELS model TIMEOUT 900)
endforeach()

# lowbit-run as a user runs it (tests/cli/lowbit_run.sh): JSON output, chat
# streaming with the speed line, a q8_0 KV cache, and clear errors for bad
# input.
foreach(case json chat bad-path bad-file bad-flag kv-q8 bad-kv)
  add_test(NAME lowbit_run_${case} COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/cli/lowbit_run.sh $<TARGET_FILE:lowbit-run> ${case})
  set_tests_properties(lowbit_run_${case} PROPERTIES SKIP_RETURN_CODE 77 LABELS model TIMEOUT 300)
endforeach()
