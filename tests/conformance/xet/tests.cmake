# Xet conformance (docs/xet.md "How it is tested"): our chunking, chunk / xorb / file / verification hashes and xorb
# and shard bytes against @huggingface/xetchunk-wasm 0.2.0, the xet-core Wasm vendored in @huggingface/hub 2.17.5,
# and the bytes @huggingface/hub's uploadFile sends. Included from tests/conformance/tests.cmake.
add_executable(xet_hash ${CMAKE_CURRENT_LIST_DIR}/xet_hash.cpp)
target_link_libraries(xet_hash PRIVATE shardforge::hub nlohmann_json::nlohmann_json)
target_include_directories(xet_hash PRIVATE ${CMAKE_SOURCE_DIR}/src)
set(sf_xet_env "XET_HASH_BIN=$<TARGET_FILE:xet_hash>;SHARDFORGE_BIN=$<TARGET_FILE:shardforge>;SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
add_test(NAME conformance.xet COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(conformance.xet PROPERTIES LABELS conformance TIMEOUT 600 ENVIRONMENT "${sf_xet_env}")
add_test(NAME conformance.xet.selftest
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lib/selftest.sh conformance/xet/run.sh "xet-core .*: every file")
set_tests_properties(conformance.xet.selftest PROPERTIES LABELS "conformance;selftest" TIMEOUT 600
  ENVIRONMENT "${sf_xet_env}")
