# Ollama conformance (ollama's docs/api.md): included from tests/conformance/tests.cmake.
# The client needs OpenSSL's sha256 (requested from the integrator for the top-level sf_module(ollama ...)).

# unit_ollama reads the fixture templates from here.
if(TARGET unit_ollama)
  target_compile_definitions(unit_ollama PRIVATE SF_OLLAMA_TEMPLATES="${CMAKE_CURRENT_LIST_DIR}/templates")
endif()

# 1. Go TEMPLATEs vs the models' Jinja chat templates (needs Debian's golang-go and node).
add_executable(ollama_modelfile_dump ${CMAKE_CURRENT_LIST_DIR}/modelfile_dump.cpp)
target_link_libraries(ollama_modelfile_dump PRIVATE shardforge::ollama nlohmann_json::nlohmann_json)
find_program(SF_NODE node)
find_program(SF_GO go)
set(sf_oll_dir ${CMAKE_CURRENT_LIST_DIR})
set(sf_oll_out ${CMAKE_BINARY_DIR}/conformance/ollama)
add_test(NAME conformance.ollama.templates
  COMMAND bash -c "if [ -z '${SF_GO}' ] || [ -z '${SF_NODE}' ]; then echo 'FAIL: needs go (Debian golang-go) and node (jobs/install-deps.sh)'; exit 1; fi; \
mkdir -p '${sf_oll_out}' && GOCACHE='${sf_oll_out}/gocache' GOFLAGS=-mod=mod '${SF_GO}' build -o '${sf_oll_out}/render' '${sf_oll_dir}/render.go' && \
'${SF_NODE}' '${sf_oll_dir}/check_templates.mjs' '$<TARGET_FILE:ollama_modelfile_dump>' '${sf_oll_out}/render'")
set_tests_properties(conformance.ollama.templates PROPERTIES LABELS conformance TIMEOUT 300)

# 2. The REST client against fake_ollama.mjs (loopback, ephemeral port).
if(TARGET CURL::libcurl AND SF_NODE)
  add_executable(ollama_client_conformance ${CMAKE_CURRENT_LIST_DIR}/client_test.cpp)
  target_link_libraries(ollama_client_conformance PRIVATE shardforge::ollama CURL::libcurl GTest::gtest
    GTest::gtest_main nlohmann_json::nlohmann_json)
  target_compile_definitions(ollama_client_conformance PRIVATE SF_NODE="${SF_NODE}"
    SF_FAKE_OLLAMA="${CMAKE_CURRENT_LIST_DIR}/fake_ollama.mjs")
  gtest_discover_tests(ollama_client_conformance TEST_PREFIX "conformance.ollama." PROPERTIES LABELS conformance
    TIMEOUT 120 DISCOVERY_TIMEOUT 60)
endif()
