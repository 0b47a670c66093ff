# GGUF LoRA adapter export (issue 9): llama.cpp + our adapter == our merged GGUF == numpy reference (run.sh).
# Included from tests/conformance/tests.cmake; SCRIPT is relative to tests/.
sf_add_script_test(conformance.glora SCRIPT conformance/glora/run.sh NP 1 LABELS conformance TIMEOUT 300)
