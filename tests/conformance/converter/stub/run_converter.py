"""run_converter.py CONVERT_HF_TO_GGUF.PY ARGS... [--then ARGS...]...: runs llama.cpp's converter unchanged under
Debian's python3, once per argument list, in one process (torch and the converter's modules are imported once; each
run builds its own model and writer from its own arguments, as a separate process would).

Debian 12's torch 1.13 predates the float8 dtypes that conversion/base.py names in its dtype tables
(LazyTorchTensor._dtype_byteswap_map, _dtype_str_map). They are defined here as placeholder objects before the
converter is imported; they only matter for F8_E4M3/F8_E5M2 safetensors, which the converter is never given (the
FP8 deepseek2 demo goes through dequant_fp8.py first), so any use of them would fail loudly (a placeholder is not a
torch.dtype).
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
for args in runs:
    sys.argv = [script] + args
    runpy.run_path(script, run_name="__main__")
