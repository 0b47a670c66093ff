# Bad-input corpus (label corpus): every case exits with its documented code, one error line, no outputs.
add_test(NAME corpus.bad_inputs.np1 COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/data/bad_inputs.py $<TARGET_FILE:shardforge>)
add_test(NAME corpus.bad_inputs.np2 COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/data/bad_inputs.py $<TARGET_FILE:shardforge>
  ${MPIEXEC_EXECUTABLE} -np 2 ${SF_MPIEXEC_FLAGS})
set_tests_properties(corpus.bad_inputs.np1 corpus.bad_inputs.np2 PROPERTIES LABELS corpus TIMEOUT 900
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
set_tests_properties(corpus.bad_inputs.np2 PROPERTIES PROCESSORS 2)
# config.json validated against the tensors: corrupted demo configs of several architectures, every format.
add_test(NAME corpus.bad_configs COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/data/bad_configs.py $<TARGET_FILE:shardforge>)
set_tests_properties(corpus.bad_configs PROPERTIES LABELS corpus TIMEOUT 900)
