# Qwen3.5 (qwen35) against llama.cpp's convert_hf_to_gguf.py, byte for byte: the demo with its LoRA merged (f32,
# f16, q8_0), the Qwen3_5ForConditionalGeneration layout, and a checkpoint without MTP tensors. Included from
# tests/conformance/tests.cmake. Tests: conformance.qwen35.np1 and its self-test (our F32 against the converter's
# F16 must fail at the first comparison).
sf_add_script_test(conformance.qwen35 SCRIPT conformance/qwen35/run.sh NP 1 LABELS conformance TIMEOUT 600
  SELFTEST "qwen35 F32: byte-identical")
