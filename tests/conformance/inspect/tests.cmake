# `shardforge inspect` on every output kind (safetensors shards and directory, gguf:<ftype>, split GGUF parts,
# gguf-lora, bnb-nf4), checked line by line against independent readers. Included from tests/conformance/tests.cmake.
add_test(NAME conformance.inspect
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/inspect_outputs.py --shardforge $<TARGET_FILE:shardforge>
    --work ${CMAKE_BINARY_DIR}/conformance/inspect)
set_tests_properties(conformance.inspect PROPERTIES LABELS conformance TIMEOUT 120)
