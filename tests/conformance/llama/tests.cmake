# Architecture conformance against llama.cpp (label conformance), included from tests/conformance/tests.cmake.
# gguf_logits.py exits 77 with the reason printed when node, node-llama-cpp or numpy is missing (ctest: skipped).
set(sf_llama_py /usr/bin/python3)
set(sf_llama_script ${CMAKE_CURRENT_LIST_DIR}/gguf_logits.py)
set(sf_llama_work ${CMAKE_BINARY_DIR}/conformance/llama)
set(sf_llama_tests)

# One ctest per architecture: demo -> export (LoRA merged: f32, f16, q8_0, + bf16 for llama; and unmerged f32)
# -> llama.cpp logits vs tests/reference/forward.py on two token lists.
foreach(arch llama mistral qwen2 qwen3 llama3 mixtral qwen2moe qwen3moe gemma gemma2 gemma3 phi3 qwen35 qwen35moe mistral3 ministral3 glm4moe qwen3next
    gemma4 gemma4moe deepseek2 gpt-oss gpt-oss-mxfp4 minimax-m2 llama4 gemma3-vl gemma3n)
  add_test(NAME conformance.gguf_logits.${arch}
    COMMAND ${sf_llama_py} ${sf_llama_script} logits --shardforge $<TARGET_FILE:shardforge>
      --work ${sf_llama_work}/logits_${arch} --arch ${arch})
  list(APPEND sf_llama_tests conformance.gguf_logits.${arch})
endforeach()

# A 3-file split (--split-max-tensors) gives bit-identical llama.cpp logits (dense, MoE, hybrid linear attention).
foreach(arch llama mixtral qwen35)
  add_test(NAME conformance.gguf_split.${arch}
    COMMAND ${sf_llama_py} ${sf_llama_script} split --shardforge $<TARGET_FILE:shardforge>
      --work ${sf_llama_work}/split_${arch} --arch ${arch})
  list(APPEND sf_llama_tests conformance.gguf_split.${arch})
endforeach()

# GGUF outputs (f32, bf16, q8_0, q4_k_m, 3-file q8_0 split) byte-identical at mpirun -np 1 and -np 3.
string(JOIN " " sf_llama_mpiflags ${SF_MPIEXEC_FLAGS})
foreach(arch llama mixtral qwen35)
  add_test(NAME conformance.gguf_mpi.${arch}
    COMMAND ${sf_llama_py} ${sf_llama_script} mpi --shardforge $<TARGET_FILE:shardforge>
      --work ${sf_llama_work}/mpi_${arch} --arch ${arch} --mpiexec=${MPIEXEC_EXECUTABLE}
      --mpiflags=${sf_llama_mpiflags})
  list(APPEND sf_llama_tests conformance.gguf_mpi.${arch})
endforeach()

# llama.cpp's token ids from our GGUF == tests/reference/bpe_tokenize.py's from tokenizer.json, exactly.
add_test(NAME conformance.gguf_tokenizer
  COMMAND ${sf_llama_py} ${sf_llama_script} tokenizer --shardforge $<TARGET_FILE:shardforge>
    --work ${sf_llama_work}/tokenizer)
list(APPEND sf_llama_tests conformance.gguf_tokenizer)

set_tests_properties(${sf_llama_tests} PROPERTIES LABELS conformance TIMEOUT 300
  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
# llama4 evaluates 8256 tokens (past llama.cpp's 8192-token attention chunk) in four GGUFs and three numpy forwards:
# 2 min of CPU; 7 and 12.7 min measured on 2 cores shared with other builds
set_tests_properties(conformance.gguf_logits.llama4 PROPERTIES TIMEOUT 1500)
