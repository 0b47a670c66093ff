# GGUF LoRA adapter export (docs/formats.md): llama.cpp + our adapter == our merged GGUF == numpy reference (run.sh).
# Included from tests/conformance/tests.cmake; SCRIPT is relative to tests/.
sf_add_script_test(conformance.glora SCRIPT conformance/glora/run.sh NP 1 LABELS conformance TIMEOUT 300
  SELFTEST "llama rslora w=1 4tok: llama.base.our lora. vs forward.py")
# Every architecture variant: llama.cpp(base + our adapter) == llama.cpp(our merged), rsLoRA and rank/alpha
# patterns, from one batch job per architecture (all_archs.sh).
sf_add_script_test(conformance.glora_archs SCRIPT conformance/glora/all_archs.sh NP 1 LABELS conformance TIMEOUT 300
  SELFTEST "llama rslora: llama.base . our lora. vs llama.our merged.")
# The self-test stops at the first architecture's first comparison: one architecture is enough.
set_property(TEST conformance.glora_archs.selftest APPEND PROPERTY ENVIRONMENT "GLORA_ARCHS=llama qwen3")
