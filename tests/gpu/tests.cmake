# GPU backend (docs/gpu.md, label gpu). gpu.identity / gpu.nccl_gather / gpu.bench need a CUDA device and exit 77
# (ctest: skipped, the reason printed) without one; gpu.device_cli runs everywhere (CPU-only builds included).
sf_add_script_test(gpu.device_cli SCRIPT gpu/device_cli.sh NP 1 2 LABELS "gpu;cli" TIMEOUT 300
  SELFTEST "--version")
foreach(t gpu.device_cli.np1 gpu.device_cli.np2 gpu.device_cli.selftest)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "SF_HAVE_CUDA=${SHARDFORGE_HAVE_CUDA}")
endforeach()

if(SHARDFORGE_HAVE_CUDA)
  foreach(t gpu_identity_test gpu_bench)
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/gpu/${t}.cpp)
    target_link_libraries(${t} PRIVATE shardforge::exec shardforge::formats shardforge::quant shardforge::lora)
    target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/src)
  endforeach()
  # gpu.identity calls exec's internal GEMM (src/exec/gpu.hpp), defined in the static exec library.
  add_test(NAME gpu.identity COMMAND gpu_identity_test)
  add_test(NAME gpu.bench COMMAND gpu_bench 2048)
  set_tests_properties(gpu.identity gpu.bench PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 900)
  if(SHARDFORGE_HAVE_NCCL)
    add_executable(nccl_gather_test ${CMAKE_CURRENT_SOURCE_DIR}/gpu/nccl_gather_test.cpp)
    target_link_libraries(nccl_gather_test PRIVATE shardforge::exec shardforge::quant)
    add_test(NAME gpu.nccl_gather COMMAND ${MPIEXEC_EXECUTABLE} ${SF_MPIEXEC_FLAGS} -np 2 $<TARGET_FILE:nccl_gather_test>)
    set_tests_properties(gpu.nccl_gather PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 300)
  endif()
endif()
