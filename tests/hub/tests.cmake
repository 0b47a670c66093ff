# Hub tests (label hub): the loopback test Hub (tests/hub/server.mjs) driven by the official @huggingface/hub
# client and by our own client. Each test starts its own server on a random port and stops it.
find_program(SF_NODE node)
if(SF_NODE)
  # The official JS client against the test Hub: proof the server speaks the real protocol.
  add_test(NAME hub.official_client COMMAND ${SF_NODE} ${CMAKE_CURRENT_LIST_DIR}/official_client.mjs)
  set_tests_properties(hub.official_client PROPERTIES LABELS hub TIMEOUT 60)
  # The Python client's request shapes (not a Debian package, so replayed with fetch) and the storage rules.
  add_test(NAME hub.python_flow COMMAND ${SF_NODE} ${CMAKE_CURRENT_LIST_DIR}/python_flow.mjs)
  set_tests_properties(hub.python_flow PROPERTIES LABELS hub TIMEOUT 60)
endif()
if(SF_NODE)
  # Our client (`shardforge push`) vs the official one on the same folder, fault injection, kill + resume, token
  # hygiene.
  add_test(NAME hub.cross_client COMMAND ${SF_NODE} ${CMAKE_CURRENT_LIST_DIR}/cross_client.mjs)
  set_tests_properties(hub.cross_client PROPERTIES LABELS hub TIMEOUT 120
    ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>")
endif()
if(SF_NODE)
  # Our client end to end (tests/hub/client_*.sh, hubc): multi-rank --push-to-hub, downloads and the HF cache,
  # commit safety (create-pr, revision, lost commit answers), token hygiene on error paths.
  sf_add_script_test(hub.client_mpi SCRIPT hub/client_mpi.sh NP 2 LABELS hub TIMEOUT 120
    SELFTEST "the repo tree equals the output dir")
endif()
if(SF_NODE)
  sf_add_script_test(hub.client_download SCRIPT hub/client_download.sh NP 2 LABELS hub TIMEOUT 120
    SELFTEST "no rank fetched the whole base")
endif()
if(SF_NODE)
  sf_add_script_test(hub.client_commit SCRIPT hub/client_commit.sh NP 1 LABELS hub TIMEOUT 120
    SELFTEST "the repo tree equals the folder")
endif()
if(SF_NODE)
  sf_add_script_test(hub.client_token SCRIPT hub/client_token.sh NP 1 LABELS hub TIMEOUT 120
    SELFTEST "push with HF_TOKEN: exit 6")
endif()
if(SF_NODE)
  # export --push-to-hub with the upload overlapping the export (hashing while writing, uploads before the end).
  sf_add_script_test(hub.client_overlap SCRIPT hub/client_overlap.sh NP 2 LABELS hub TIMEOUT 120
    SELFTEST "direct: the repo tree matches sha256sum")
endif()
if(SF_NODE)
  # Two ranks each: counted as two processors so ctest -j2 does not run them beside the timing-sensitive kill test.
  set_tests_properties(hub.client_mpi.np2 hub.client_download.np2 hub.client_overlap.np2 PROPERTIES PROCESSORS 2)
else()
  # node is installed by jobs/install-deps.sh: without it the hub tests would silently vanish from the run.
  add_test(NAME hub.node COMMAND sh -c "echo 'FAIL: node was not found when CMake ran: the hub tests need it (jobs/install-deps.sh)'; exit 1")
  set_tests_properties(hub.node PROPERTIES LABELS hub)
endif()
if(SF_NODE)
  # --private, --license, --commit-message/--commit-description, --hub-parallel as the Hub received them, and
  # --base ORG/NAME resolved from an HF cache the official client (@huggingface/hub snapshotDownload) filled.
  sf_add_script_test(hub.client_options SCRIPT hub/client_options.sh NP 1 LABELS hub TIMEOUT 120
    SELFTEST "--commit-description: the head commit")
endif()
if(SF_NODE)
  # The official JS client through the test Hub's CAS (server.mjs --xet), and the reverse with our client.
  add_test(NAME hub.official_xet COMMAND ${SF_NODE} ${CMAKE_CURRENT_LIST_DIR}/official_xet.mjs)
  set_tests_properties(hub.official_xet PROPERTIES LABELS hub TIMEOUT 120
    ENVIRONMENT "SHARDFORGE_BIN=$<TARGET_FILE:shardforge>")
  # Our client's Xet upload against the test Hub's CAS (server.mjs --xet).
  sf_add_script_test(hub.client_xet SCRIPT hub/client_xet.sh NP 1 LABELS hub TIMEOUT 180
    SELFTEST "the repo tree equals the folder")
  # Xet downloads: files the official JS client uploaded through the CAS, fetched by `shardforge download` through
  # the reconstruction API (--include, faults, --transfer lfs, resume).
  sf_add_script_test(hub.client_xet_download SCRIPT hub/client_xet_download.sh NP 1 LABELS hub TIMEOUT 180
    SELFTEST "every file is byte-identical to the uploaded one")
endif()
