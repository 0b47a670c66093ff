# ThreadSanitizer run of the threaded quantizer (docs/testing.md): only in a -DSHARDFORGE_SANITIZE=thread build.
# tsan_quant links just the quant library and the unit tests that call quant::quantize_rows_parallel (worker threads
# over row ranges, lazily built IQ grids shared by the workers); the filter keeps those tests, so the build and the
# run stay small (tests/run.sh builds only this target in its TSan build). Label tsan.
if(SHARDFORGE_SANITIZE MATCHES "thread")
  add_executable(tsan_quant EXCLUDE_FROM_ALL
    ${CMAKE_SOURCE_DIR}/tests/unit/quant/oracle_test.cpp
    ${CMAKE_SOURCE_DIR}/tests/unit/quant/iq_oracle_test.cpp
    ${CMAKE_SOURCE_DIR}/tests/unit/quant/simd_q3_test.cpp)
  target_link_libraries(tsan_quant PRIVATE shardforge::quant GTest::gtest GTest::gtest_main ${CMAKE_DL_LIBS})
  target_include_directories(tsan_quant PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_compile_definitions(tsan_quant PRIVATE SHARDFORGE_TEST_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  # halt_on_error: a data race fails the test instead of only printing a report. A missing ggml oracle
  # fails the test (tests/unit/quant); a CPU without AVX2 skips (GTEST_SKIP -> ctest skip, which tests/run.sh reports
  # and fails: only gpu-labelled tests may skip).
  add_test(NAME tsan.quant_parallel COMMAND tsan_quant
    --gtest_filter=*Parallel*:SimdQ3.QuantizeRowsMatchesScalarKernel:IqOracle.MissingImatrixIsRefusedNotAborted)
  set_tests_properties(tsan.quant_parallel PROPERTIES LABELS tsan TIMEOUT 600 SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]"
    ENVIRONMENT "SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR};TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1")
endif()
