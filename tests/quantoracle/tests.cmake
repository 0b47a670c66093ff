# unit_quant's oracle test dlopen()s ggml's prebuilt libggml-base.so (tests/unit/quant/oracle_test.cpp).
# Included by tests/CMakeLists.txt after the unit targets exist.
if(TARGET unit_quant)
  target_link_libraries(unit_quant PRIVATE ${CMAKE_DL_LIBS})
  target_compile_definitions(unit_quant PRIVATE SHARDFORGE_TEST_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
endif()
