add_test(NAME conformance.hf_parse_exports COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(conformance.hf_parse_exports PROPERTIES LABELS conformance TIMEOUT 300
  ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>;SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
add_test(NAME conformance.hf_parse_exports.selftest
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lib/selftest.sh conformance/hfparse/run.sh "@huggingface/gguf parses")
set_tests_properties(conformance.hf_parse_exports.selftest PROPERTIES LABELS "conformance;selftest" TIMEOUT 300
  ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>;SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
