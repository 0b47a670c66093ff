add_test(NAME layering.includes COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/layering/check.sh)
set_tests_properties(layering.includes PROPERTIES LABELS unit ENVIRONMENT "SHARDFORGE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
