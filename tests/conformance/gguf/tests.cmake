# GGUF conformance (llama.cpp's ggml/src/gguf.cpp, tools/gguf-split/gguf-split.cpp): included from
# tests/conformance/tests.cmake.
# 1. unit_formats dlopen()s ggml's libggml-base.so as a reader oracle (gguf_ggml_oracle_test.cpp).
if(TARGET unit_formats)
  target_link_libraries(unit_formats PRIVATE ${CMAKE_DL_LIBS})
  target_compile_definitions(unit_formats PRIVATE
    SF_GGML_BASE_SO="${CMAKE_SOURCE_DIR}/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so")
endif()

# 2. @huggingface/gguf parses the files our writer produces (single file and a 3-shard split).
add_executable(gguf_sample_writer ${CMAKE_CURRENT_LIST_DIR}/gguf_sample_writer.cpp)
target_link_libraries(gguf_sample_writer PRIVATE shardforge::formats nlohmann_json::nlohmann_json)
find_program(SF_NODE node)
if(SF_NODE)
  set(sf_gguf_dir ${CMAKE_BINARY_DIR}/conformance/gguf_samples)
  add_test(NAME conformance.gguf.huggingface_parse
    COMMAND bash -c "rm -rf '${sf_gguf_dir}' && '$<TARGET_FILE:gguf_sample_writer>' '${sf_gguf_dir}' && \
'${SF_NODE}' '${CMAKE_SOURCE_DIR}/tests/conformance/gguf_parse.mjs' '${sf_gguf_dir}'")
  set_tests_properties(conformance.gguf.huggingface_parse PROPERTIES LABELS conformance TIMEOUT 120)
endif()
