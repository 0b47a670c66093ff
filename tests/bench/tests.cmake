# Benchmarks (label: bench): Google Benchmark executables, built only when the library is found.
# quant_bench: our quantize_rows vs ggml's ggml_quantize_chunk (dlopen'ed), per type; read the ratio ours/ggml.
# As a test it asserts first that both write the same bytes for every type (exit 1 otherwise); its self-test flips
# one byte of ours and must fail.
if(TARGET benchmark::benchmark AND NOT TARGET quant_bench)
  add_executable(quant_bench ${CMAKE_CURRENT_LIST_DIR}/quant_bench.cpp)
  target_link_libraries(quant_bench PRIVATE shardforge::quant benchmark::benchmark ${CMAKE_DL_LIBS})
  target_compile_definitions(quant_bench PRIVATE SHARDFORGE_BENCH_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_test(NAME bench.quant COMMAND quant_bench --benchmark_min_time=0.05)
  set_tests_properties(bench.quant PROPERTIES LABELS bench TIMEOUT 600 ENVIRONMENT "${SF_TEST_ENV}")
  add_test(NAME bench.quant.selftest COMMAND sh -c "SF_SELFTEST_WRONG=1 \"$0\" --benchmark_filter=^$; test $? -eq 1"
    $<TARGET_FILE:quant_bench>)
  set_tests_properties(bench.quant.selftest PROPERTIES LABELS "bench;selftest" TIMEOUT 60 ENVIRONMENT "${SF_TEST_ENV}")
endif()
# dequant_bench: quantized-input dequantization kernels (NF4, FP8 block) vs bf16 widening; not a test (prints ratios).
if(NOT TARGET dequant_bench)
  add_executable(dequant_bench ${CMAKE_CURRENT_LIST_DIR}/dequant_bench.cpp)
  target_link_libraries(dequant_bench PRIVATE shardforge::formats shardforge::quant Threads::Threads)
endif()
# delta_bench: the LoRA delta kernel (every SIMD path) vs OpenBLAS cblas_sgemm on one thread; not a test (prints
# ratios). Needs OpenBLAS (only this benchmark links it).
if(NOT TARGET delta_bench AND BLAS_FOUND AND CBLAS_INCLUDE_DIR)
  add_executable(delta_bench ${CMAKE_CURRENT_LIST_DIR}/delta_bench.cpp)
  target_link_libraries(delta_bench PRIVATE shardforge::lora ${BLAS_LIBRARIES})
  target_include_directories(delta_bench PRIVATE ${CMAKE_SOURCE_DIR}/src ${CBLAS_INCLUDE_DIR})
endif()
# compare.sh: the one benchmark command (ours vs cp, llama-quantize, the Python chain, ggml's kernels; one table of
# ratios). Not run as a benchmark here; its --smoke mode (demo-sized model, 1 repetition: about 22 s of CPU, 70-110 s
# wall on the shared 2-core machine at load average 7-15) checks that every row is measured, our Q4_K_M is byte-identical to llama-quantize's, and the
# 2-thread/2-rank outputs equal the 1-thread one. Uses this build's shardforge, tests/lq_quantize
# (tests/conformance/quantize) and quant_bench (SHARDFORGE_BUILD_DIR); the self-test compares with the wrong file.
if(TARGET quant_bench AND NOT TEST bench.compare.smoke)
  add_test(NAME bench.compare.smoke COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/compare.sh --smoke --no-build)
  set_tests_properties(bench.compare.smoke PROPERTIES LABELS bench TIMEOUT 300 PROCESSORS 2 ENVIRONMENT "${SF_TEST_ENV}")
  add_test(NAME bench.compare.selftest COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lib/selftest.sh
    "bench/compare.sh --smoke --no-build" "our Q4_K_M .1 thread. is byte-identical")
  set_tests_properties(bench.compare.selftest PROPERTIES LABELS "bench;selftest" TIMEOUT 300 PROCESSORS 2
    ENVIRONMENT "${SF_TEST_ENV}")
endif()
