# Fault injection (label fault) through the SHARDFORGE_FAULT hook (src/exec/fault.cpp, always built). Path safety
# and symlink handling (label safety).
sf_add_script_test(fault.injection SCRIPT fault/fault_injection.sh NP 1 2 LABELS fault TIMEOUT 900
  SELFTEST "eio_write:3: exit 4")

# One writer per output directory, verification before the renames (docs/engine.md).
sf_add_script_test(fault.output_lock SCRIPT fault/output_lock.sh NP 1 2 LABELS "fault;resume" TIMEOUT 600
  SELFTEST "second run while the first runs: exit 0")

add_executable(fault_path_safety ${CMAKE_CURRENT_SOURCE_DIR}/fault/path_safety_test.cpp)
target_link_libraries(fault_path_safety PRIVATE shardforge::plan GTest::gtest GTest::gtest_main nlohmann_json::nlohmann_json)
gtest_discover_tests(fault_path_safety TEST_PREFIX "safety.path." PROPERTIES LABELS "unit;safety"
  ENVIRONMENT "${SF_TEST_ENV}" DISCOVERY_TIMEOUT 60)
sf_add_script_test(safety.symlinks SCRIPT fault/symlinks.sh NP 1 2 LABELS safety TIMEOUT 600
  SELFTEST "no symlink target outside --out was modified")
sf_add_script_test(safety.valgrind_export SCRIPT fault/valgrind_export.sh NP 1 LABELS valgrind TIMEOUT 1800
  SELFTEST "memcheck finds no error")
