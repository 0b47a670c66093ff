# Fuzz targets (docs/testing.md "Reliability"). One entry point per parser: tests/fuzz/fuzz_<target>.cpp defines
# LLVMFuzzerTestOneInput.
#   SHARDFORGE_BUILD_FUZZERS=ON (clang): fuzz_<target> libFuzzer executables, -fsanitize=fuzzer,address,undefined
#     (tests/fuzz/run_fuzzers.sh and the sanitizer build of tests/run.sh run them); ctest fuzz.replay.<target> runs
#     fuzz_<target> -runs=0 on the seeds and regressions.
#   OFF (normal builds): fuzz_replay_<target> runs the entry point once on every seed in corpus/<target>/ and every
#     crash reproducer in regressions/<target>/; registered as ctest fuzz.replay.<target> (label fuzz).
set(SF_FUZZ_TARGETS safetensors gguf adapter_config hf_config tokenizer tokenizer_files sentencepiece plan hub bnb_quant_state job imatrix)
set(SF_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

if(SHARDFORGE_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SHARDFORGE_BUILD_FUZZERS=ON needs clang (CXX=clang++), not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  # Coverage instrumentation for the libraries under test; -fsanitize=fuzzer (with main) only on the executables.
  target_compile_options(shardforge_flags INTERFACE -fsanitize=fuzzer-no-link)
  if(NOT SHARDFORGE_SANITIZE)
    target_compile_options(shardforge_flags INTERFACE -fsanitize=address,undefined -fno-omit-frame-pointer)
    target_link_options(shardforge_flags INTERFACE -fsanitize=address,undefined)
  endif()
  foreach(t ${SF_FUZZ_TARGETS})
    add_executable(fuzz_${t} ${SF_FUZZ_DIR}/fuzz_${t}.cpp)
    target_link_libraries(fuzz_${t} PRIVATE shardforge::plan shardforge::hub nlohmann_json::nlohmann_json)
    target_include_directories(fuzz_${t} PRIVATE ${CMAKE_SOURCE_DIR}/src)   # private headers, e.g. hub/protocol.hpp
    target_compile_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer,address,undefined)
    # The same replay test as in normal builds, by libFuzzer itself: -runs=0 executes every seed and regression once.
    # The first directory is libFuzzer's output corpus (nothing is written with -runs=0; a scratch one all the same).
    set(sf_fuzz_dirs ${CMAKE_BINARY_DIR}/fuzz-replay/${t} ${SF_FUZZ_DIR}/corpus/${t})
    if(EXISTS ${SF_FUZZ_DIR}/regressions/${t})
      list(APPEND sf_fuzz_dirs ${SF_FUZZ_DIR}/regressions/${t})
    endif()
    file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz-replay/${t})
    add_test(NAME fuzz.replay.${t} COMMAND fuzz_${t} -runs=0 ${sf_fuzz_dirs})
    set_tests_properties(fuzz.replay.${t} PROPERTIES LABELS fuzz TIMEOUT 300
      ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1;UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
  endforeach()
else()
  foreach(t ${SF_FUZZ_TARGETS})
    add_executable(fuzz_replay_${t} ${SF_FUZZ_DIR}/fuzz_${t}.cpp ${SF_FUZZ_DIR}/replay_main.cpp)
    target_link_libraries(fuzz_replay_${t} PRIVATE shardforge::plan shardforge::hub nlohmann_json::nlohmann_json)
    target_include_directories(fuzz_replay_${t} PRIVATE ${CMAKE_SOURCE_DIR}/src)
    add_test(NAME fuzz.replay.${t} COMMAND fuzz_replay_${t} ${SF_FUZZ_DIR}/corpus/${t} ${SF_FUZZ_DIR}/regressions/${t})
    set_tests_properties(fuzz.replay.${t} PROPERTIES LABELS fuzz TIMEOUT 300)
  endforeach()
  # Seed maker for the plan corpus (tests/fuzz/make_seeds.sh); not a test.
  add_executable(fuzz_plan_seed EXCLUDE_FROM_ALL ${SF_FUZZ_DIR}/plan_seed.cpp)
  target_link_libraries(fuzz_plan_seed PRIVATE shardforge::plan)
endif()
