# `shardforge export --format gguf:<ftype>` against the real llama-quantize (llama_model_quantize of node-llama-cpp's
# libllama): byte identity of every ftype, with and without an importance matrix. Included from
# tests/conformance/tests.cmake.
# Tests: conformance.quantize.{demo,gqa32,moe,imatrix,qwen35,families}; a missing libllama, python or MoE demo is a failure.
add_executable(lq_quantize ${CMAKE_CURRENT_LIST_DIR}/lq_quantize.cpp)
target_link_libraries(lq_quantize PRIVATE ${CMAKE_DL_LIBS})
target_compile_definitions(lq_quantize PRIVATE
  SF_LQ_DEFAULT_LIB_DIR="${CMAKE_SOURCE_DIR}/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
foreach(sf_lq_case demo gqa32 moe imatrix qwen35 families)
  add_test(NAME conformance.quantize.${sf_lq_case}
    COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh ${sf_lq_case})
  set_tests_properties(conformance.quantize.${sf_lq_case} PROPERTIES LABELS conformance TIMEOUT 900 PROCESSORS 2
    ENVIRONMENT "${SF_TEST_ENV};LQ_QUANTIZE=$<TARGET_FILE:lq_quantize>")
endforeach()
add_test(NAME conformance.quantize.selftest
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lib/selftest.sh "conformance/quantize/run.sh demo" "demo Q4_K_M is byte-identical")
set_tests_properties(conformance.quantize.selftest PROPERTIES LABELS "conformance;selftest" TIMEOUT 900 PROCESSORS 2
  ENVIRONMENT "${SF_TEST_ENV};LQ_QUANTIZE=$<TARGET_FILE:lq_quantize>")
