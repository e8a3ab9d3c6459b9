# The llama/qwen2 model, sampler and chat formats (lowbit-model), and the
# lowbit-run CLI on top of the model and the tokenizer.
add_library(lowbit-model STATIC
  ${CMAKE_CURRENT_LIST_DIR}/model.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sampler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/chat.cpp
  ${CMAKE_CURRENT_LIST_DIR}/synthetic.cpp)
target_include_directories(lowbit-model PUBLIC ${PROJECT_SOURCE_DIR}/decoder)
target_link_libraries(lowbit-model PUBLIC lowbit-gguf lowbit PRIVATE lowbit_options)

add_executable(lowbit-run ${PROJECT_SOURCE_DIR}/decoder/run/lowbit_run.cpp)
target_link_libraries(lowbit-run PRIVATE lowbit-model lowbit-tokenizer lowbit_options)
add_executable(lowbit-make-model ${PROJECT_SOURCE_DIR}/decoder/run/make_model.cpp)
target_link_libraries(lowbit-make-model PRIVATE lowbit-model lowbit_options)
install(TARGETS lowbit-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
