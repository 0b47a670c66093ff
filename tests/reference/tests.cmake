# Numeric references (label reference): the CLI's merged safetensors vs an independent numpy merge.
add_test(NAME reference.cli_merge.np1 COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/reference/cli_merge_check.py
  $<TARGET_FILE:shardforge>)
add_test(NAME reference.cli_merge.np3 COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/reference/cli_merge_check.py
  $<TARGET_FILE:shardforge> ${MPIEXEC_EXECUTABLE} -np 3 ${SF_MPIEXEC_FLAGS})
set_tests_properties(reference.cli_merge.np1 reference.cli_merge.np3 PROPERTIES LABELS reference TIMEOUT 900
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
# bitsandbytes 4-bit output (bnb-nf4/bnb-fp4, +/- double quant): bytes vs the numpy reference of bnb's CPU rules,
# a transformers-style numpy loader, the re-quantization report, and np2 == np1.
add_test(NAME reference.bnb_out COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/reference/bnb_out_check.py
  $<TARGET_FILE:shardforge> ${MPIEXEC_EXECUTABLE} ${SF_MPIEXEC_FLAGS})
set_tests_properties(reference.bnb_out PROPERTIES LABELS reference TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
set_tests_properties(reference.cli_merge.np3 reference.bnb_out PROPERTIES PROCESSORS 2)
# Vision-language projector (gemma3-vl): the embeddings of a fixed image computed (vision_forward.py, numpy) from the
# tensors of our mmproj GGUF (f32/f16/q8_0) equal those of the merged HF checkpoint; the vision-tower LoRA moves them.
add_test(NAME reference.mmproj COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/reference/mmproj_check.py
  $<TARGET_FILE:shardforge>)
set_tests_properties(reference.mmproj PROPERTIES LABELS reference TIMEOUT 300)
# A LoRA on gpt-oss's MXFP4 experts (PEFT target_parameters): the MXFP4 export's experts equal ggml's quantizer
# (libggml-base, dlopen'ed) applied to the same merge from a 16-bit twin of the base, every other tensor identical,
# the re-quantization report (mxfp4_requant.tsv) equal to statistics recomputed from the files; 2 ranks == 1 rank.
string(JOIN " " sf_mxfp4_mpiflags ${SF_MPIEXEC_FLAGS})
add_test(NAME reference.mxfp4_lora COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/reference/mxfp4_lora_check.py
  --shardforge $<TARGET_FILE:shardforge> --work ${CMAKE_BINARY_DIR}/reference/mxfp4_lora
  --ggml ${CMAKE_SOURCE_DIR}/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so
  --mpiexec ${MPIEXEC_EXECUTABLE} "--mpiflags=${sf_mxfp4_mpiflags}")
set_tests_properties(reference.mxfp4_lora PROPERTIES LABELS reference TIMEOUT 300 PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
