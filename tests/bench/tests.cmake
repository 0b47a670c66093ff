# Benchmarks (label: bench): Google Benchmark executables, built only when the library is found.
if(TARGET benchmark::benchmark AND NOT TARGET quant_bench)
  add_executable(quant_bench ${CMAKE_CURRENT_LIST_DIR}/quant_bench.cpp)
  target_link_libraries(quant_bench PRIVATE shardforge::quant benchmark::benchmark ${CMAKE_DL_LIBS})
  target_compile_definitions(quant_bench PRIVATE SHARDFORGE_BENCH_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
endif()
