# The distributed engine (docs/engine.md, label engine): row blocks, memory budget, preflight refusals, dry run.
sf_add_script_test(engine.row_blocks SCRIPT engine/row_blocks.sh NP 2 LABELS engine TIMEOUT 300
  SELFTEST "phi3: the row-block export is byte-identical")
sf_add_script_test(engine.memory_budget SCRIPT engine/memory_budget.sh NP 2 LABELS "engine;native" TIMEOUT 300
  SELFTEST "the reported peak RSS")
sf_add_script_test(engine.preflight SCRIPT engine/preflight.sh NP 2 LABELS engine TIMEOUT 300
  SELFTEST "disk space: refused")
sf_add_script_test(engine.gather_faults SCRIPT engine/gather_faults.sh NP 3 LABELS engine TIMEOUT 300
  SELFTEST "eio_write:5:rank=0: every rank exits")
sf_add_script_test(engine.scale_qwen35moe SCRIPT engine/scale_qwen35moe.sh NP 2 LABELS "engine;scale" TIMEOUT 300
  SELFTEST "8 ranks: planned peak per rank")
sf_add_script_test(engine.scale_glm46 SCRIPT engine/scale_glm46.sh NP 1 LABELS "engine;scale" TIMEOUT 300
  SELFTEST "16 ranks: planned peak per rank")
sf_add_script_test(engine.scale_deepseek2 SCRIPT engine/scale_deepseek2.sh NP 2 LABELS "engine;scale" TIMEOUT 600
  SELFTEST "deepseek-v3, 16 ranks: planned peak per rank")
sf_add_script_test(engine.scale_minimax_m2 SCRIPT engine/scale_minimax_m2.sh NP 1 LABELS "engine;scale" TIMEOUT 300
  SELFTEST "16 ranks: planned peak per rank")
sf_add_script_test(engine.scale_llama4 SCRIPT engine/scale_llama4.sh NP 2 LABELS "engine;scale" TIMEOUT 900
  SELFTEST "8 ranks: planned peak per rank")
sf_add_script_test(engine.scale_gpt_oss SCRIPT engine/scale_gpt_oss.sh NP 1 LABELS "engine;scale" TIMEOUT 300
  SELFTEST "MXFP4_MOE, 16 ranks: planned peak per rank")
sf_add_script_test(engine.scale_qwen3moe SCRIPT engine/scale_qwen3moe.sh NP 1 LABELS "engine;scale" TIMEOUT 300
  SELFTEST "safetensors,gguf:q4_k_m: planned reads")
sf_add_script_test(engine.moe_one_read SCRIPT engine/moe_one_read.sh NP 1 3 LABELS engine TIMEOUT 900
  SELFTEST "qwen3moe: safetensors,gguf:q8_0,gguf:q4_k_m together: the files")
