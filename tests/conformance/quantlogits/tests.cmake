add_test(NAME conformance.quant_logits COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(conformance.quant_logits PROPERTIES LABELS conformance TIMEOUT 600
  ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>;SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
