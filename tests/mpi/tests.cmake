# MPI integration tests (label mpi): the same script at several rank counts.
sf_add_script_test(mpi.identical_outputs SCRIPT mpi/identical_outputs.sh NP 1 2 3 4 LABELS mpi TIMEOUT 600
  SELFTEST "the outputs of -np 1 equal")
# The determinism matrix: bytes independent of rank count, binding, threads, OPENBLAS_NUM_THREADS, SIMD path, row
# blocks and write mode (three inputs x five formats). Its self-test changes one option of a launch (adapter weight
# 0.5) and expects the reference bytes: the comparison must fail.
sf_add_script_test(mpi.determinism SCRIPT mpi/determinism.sh NP 4 LABELS mpi TIMEOUT 1500
  SELFTEST "llama: np2-scalar .adapter weight 0.5. writes the reference bytes")
# Rank invariance of the newer families' demos (mistral3, ministral3, glm4moe, qwen3next, gemma4, gemma4moe, deepseek2, gpt-oss, llama4): -np 1, 2 and 3 write the same bytes.
sf_add_script_test(mpi.family_ranks SCRIPT mpi/family_ranks.sh NP 3 LABELS mpi TIMEOUT 900
  SELFTEST "mistral3: the outputs of -np 2 equal")
