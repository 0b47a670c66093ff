# Conformance tests (label conformance): each subfolder registers its own tests in <sub>/tests.cmake.
file(GLOB sf_conformance_cmake CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*/tests.cmake)
foreach(f ${sf_conformance_cmake})
  include(${f})
endforeach()
