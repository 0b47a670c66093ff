"""run_converter.py CONVERT_HF_TO_GGUF.PY ARGS... [--then ARGS...]...: runs llama.cpp's converter unchanged under
Debian's python3, once per argument list, in one process (torch and the converter's modules are imported once; each
run builds its own model and writer from its own arguments, as a separate process would).

With SF_STUB_GLM4_PRE=1 (set by run.sh for the glm4moe demo only), get_vocab_base_pre is wrapped for the one
deviation GLM needs: GLM-4.5/4.6/4.7 split text exactly as Llama 3 does (the same Split regex; llama.cpp's
llama-vocab.cpp gives "glm4" that regex), but their published fingerprints are of GLM's 151k vocabulary, which the
bundle has no ggml-vocab file for, and GLM's tokenizer adds no BOS. The wrapper asks the converter's own
get_vocab_base_pre about the demo's chktxt ids under Llama 3's vocabulary (SF_STUB_FINGERPRINT_VOCAB) with Llama 3's
BOS in front; it must answer "llama-bpe" (the demo splits as GLM does), and then "glm4" is returned, as the converter
does for the published GLM tokenizers. Any other answer stops the run.

Debian 12's torch 1.13 predates the float8 dtypes that conversion/base.py names in its dtype tables
(LazyTorchTensor._dtype_byteswap_map, _dtype_str_map). They are defined here as placeholder objects before the
converter is imported; they only matter for F8_E4M3/F8_E5M2 safetensors, which shardforge's demo checkpoints
never hold, so any use of them would fail loudly (a placeholder is not a torch.dtype).
"""
import os
import runpy
import sys

import torch

for _name in ("float8_e4m3fn", "float8_e5m2"):
    if not hasattr(torch, _name):
        setattr(torch, _name, type(f"missing_torch_{_name}", (), {})())

script = sys.argv[1]
runs = [[]]
for a in sys.argv[2:]:
    if a == "--then":
        runs.append([])
    else:
        runs[-1].append(a)
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python3 SCRIPT` does

if os.environ.get("SF_STUB_GLM4_PRE") == "1":
    import transformers
    from conversion.base import TextModel

    _pre = TextModel.get_vocab_base_pre

    def _glm4_pre(self, tokenizer):
        vocab, _merges = transformers._load_vocab_gguf(os.environ["SF_STUB_FINGERPRINT_VOCAB"])
        bos = vocab["<|begin_of_text|>"]

        class _WithLlama3Bos:
            def encode(self, text):
                return [bos] + tokenizer.encode(text)

        res = _pre(self, _WithLlama3Bos())
        if res != "llama-bpe":
            raise NotImplementedError(f"stand-in: the demo's pre-tokenizer is not GLM's (Llama 3's): {res!r}")
        return "glm4"

    TextModel.get_vocab_base_pre = _glm4_pre
for args in runs:
    sys.argv = [script] + args
    runpy.run_path(script, run_name="__main__")
