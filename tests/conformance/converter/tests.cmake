# `shardforge export --format gguf:f32|f16|q8_0` against llama.cpp's own convert_hf_to_gguf.py on the same merged
# checkpoint, every demo architecture, then llama-quantize (lq_quantize, tests/conformance/quantize/tests.cmake) of
# the converter's F32 at Q4_K_M and IQ4_XS: byte identity (tests/conformance/converter/README.md). Included from
# tests/conformance/tests.cmake. Tests: conformance.converter.np1 and its self-test (our F32 against the
# converter's F16 must fail at the first comparison).
sf_add_script_test(conformance.converter SCRIPT conformance/converter/run.sh NP 1 LABELS conformance TIMEOUT 900
  SELFTEST "llama F32: byte-identical")
# lq_quantize: the libllama driver of tests/conformance/quantize.
foreach(t conformance.converter.np1 conformance.converter.selftest)
  set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "LQ_QUANTIZE=$<TARGET_FILE:lq_quantize>")
endforeach()
