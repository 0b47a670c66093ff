# Quantized bases (docs/formats.md): tests/reference/quant_check.py against the numpy references quant_ref.py,
# merge_ref.py and forward.py. Labels: reference (bit-identity), conformance (llama.cpp), mpi (rank identity).
set(sf_quant_check ${CMAKE_SOURCE_DIR}/tests/reference/quant_check.py)
set(sf_quant_work ${CMAKE_BINARY_DIR}/quantized)
string(JOIN " " sf_quant_mpiflags ${SF_MPIEXEC_FLAGS})
add_test(NAME quantized.safetensors COMMAND /usr/bin/python3 ${sf_quant_check} safetensors
  --shardforge $<TARGET_FILE:shardforge> --work ${sf_quant_work}/safetensors)
add_test(NAME quantized.gguf_logits COMMAND /usr/bin/python3 ${sf_quant_check} gguf
  --shardforge $<TARGET_FILE:shardforge> --work ${sf_quant_work}/gguf)
add_test(NAME quantized.mpi COMMAND /usr/bin/python3 ${sf_quant_check} mpi
  --shardforge $<TARGET_FILE:shardforge> --work ${sf_quant_work}/mpi --mpiexec=${MPIEXEC_EXECUTABLE}
  --mpiflags=${sf_quant_mpiflags})
set_tests_properties(quantized.safetensors PROPERTIES LABELS reference TIMEOUT 300)
set_tests_properties(quantized.gguf_logits PROPERTIES LABELS conformance TIMEOUT 300)
set_tests_properties(quantized.mpi PROPERTIES LABELS mpi TIMEOUT 300 PROCESSORS 2
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
# Input dequantization on the GPU (docs/gpu.md): bit-identical to the numpy reference; skipped (77) without a GPU.
add_test(NAME quantized.gpu COMMAND /usr/bin/python3 ${sf_quant_check} gpu
  --shardforge $<TARGET_FILE:shardforge> --work ${sf_quant_work}/gpu)
set_tests_properties(quantized.gpu PROPERTIES LABELS "gpu;reference" TIMEOUT 300 SKIP_RETURN_CODE 77)
