add_test(NAME conformance.quant_logits COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(conformance.quant_logits PROPERTIES LABELS conformance TIMEOUT 600
  ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>;SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
add_test(NAME conformance.quant_logits.selftest
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/lib/selftest.sh conformance/quantlogits/run.sh "KL grows as bits shrink: Q4_K_M")
set_tests_properties(conformance.quant_logits.selftest PROPERTIES LABELS "conformance;selftest" TIMEOUT 600
  ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>;SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
