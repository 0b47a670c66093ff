# Mistral 3 GGUFs in llama.cpp against the numpy forward, and the Mistral 3 refusals (tests/conformance/mistral3/run.sh).
# Self-test: the numpy reference without the LoRA must not match the merged model.
sf_add_script_test(conformance.mistral3 SCRIPT conformance/mistral3/run.sh NP 1 LABELS conformance TIMEOUT 600
  SELFTEST "mistral3: llama.cpp F32 logits equal the numpy forward")
