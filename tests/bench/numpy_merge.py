#!/usr/bin/python3
"""numpy_merge.py BASE ADAPTER OUT: the Python chain's first step in tests/bench/compare.sh, a plain numpy LoRA merge
as a user script does it (PEFT's merge arithmetic, tuners/lora/layer.py: W + scaling * (B @ A), scaling = lora_alpha / r
or lora_alpha / sqrt(r) with use_rslora), with numpy's matmul (BLAS), each merged tensor rounded back to the base's
dtype. Writes OUT/model.safetensors and copies the base's other files (config, tokenizer), so OUT is what
convert_hf_to_gguf.py reads. Plain LoRA on linear layers only (what `shardforge demo` writes); anything else is
refused. Not an oracle: tests/reference/merge_ref.py is the bit-exact reference; this one is timed, not compared.
"""
import glob
import json
import math
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402


def main():
    base, adapter, out = sys.argv[1:4]
    with open(os.path.join(adapter, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("use_dora") or cfg.get("rank_pattern") or cfg.get("alpha_pattern") or cfg.get("modules_to_save"):
        sys.exit("numpy_merge.py: only plain LoRA (no DoRA, patterns or modules_to_save)")
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scaling = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    tensors = {}
    for p in sorted(glob.glob(os.path.join(base, "*.safetensors"))):
        tensors.update(st_io.read(p))
    lora = st_io.read(os.path.join(adapter, "adapter_model.safetensors"))
    prefix = "base_model.model."
    n = 0
    for name, (_, a) in lora.items():
        if not name.endswith(".lora_A.weight"):
            continue
        target = name[len(prefix):-len(".lora_A.weight")] + ".weight"
        b = lora[name.replace(".lora_A.", ".lora_B.")][1]
        dt, w = tensors[target]
        tensors[target] = (dt, w + np.float32(scaling) * (b.astype(np.float32) @ a.astype(np.float32)))
        n += 1
    os.makedirs(out, exist_ok=True)
    st_io.write(os.path.join(out, "model.safetensors"), tensors, {"format": "pt"})
    for p in os.listdir(base):
        if not p.endswith(".safetensors") and p != "model.safetensors.index.json":
            shutil.copy(os.path.join(base, p), out)
    print(f"numpy_merge.py: {n} LoRA pairs merged into {len(tensors)} tensors")


if __name__ == "__main__":
    main()
