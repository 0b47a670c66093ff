#!/usr/bin/python3
"""Independent reference for token-embedding LoRA (forward.py merges lora_A/lora_B modules only):

    /usr/bin/python3 premerge_embed.py BASE_DIR ADAPTER_DIR OUT_DIR [--weight W]

Writes OUT_DIR = BASE_DIR with embed_tokens.weight += W * s * (lora_embedding_B @ lora_embedding_A)^T in float64
(PEFT Embedding: s = alpha/r, per-module rank/alpha patterns by "(.*\\.)?(key)$"), all tensors as F32 in one
model.safetensors, small files copied. forward.py OUT_DIR --lora ADAPTER_DIR then adds the linear modules.
"""
import json
import math
import os
import re
import shutil
import struct
import sys

import numpy as np


def read_st(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        if v["dtype"] == "BF16":
            arr = (np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data[b:e], dtype={"F32": "<f4", "F16": "<f2"}[v["dtype"]])
        out[k] = arr.astype(np.float64).reshape(v["shape"])
    return out


def pattern(pat, module, default):
    for k, v in pat.items():
        if re.fullmatch(r"(.*\.)?(" + k + r")", module):
            return v
    return default


def main():
    base, adapter, out = sys.argv[1:4]
    weight = float(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--weight" else 1.0
    w = {}
    for fn in sorted(os.listdir(base)):
        if fn.endswith(".safetensors"):
            w.update(read_st(os.path.join(base, fn)))
    cfg = json.load(open(os.path.join(adapter, "adapter_config.json")))
    ad = read_st(os.path.join(adapter, "adapter_model.safetensors"))
    n = 0
    for key in ad:
        if not key.endswith(".lora_embedding_A"):
            continue
        mod = key[len("base_model.model."):-len(".lora_embedding_A")]
        r = pattern(cfg.get("rank_pattern") or {}, mod, cfg["r"])
        alpha = pattern(cfg.get("alpha_pattern") or {}, mod, cfg["lora_alpha"])
        s = (alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r) * weight
        A, B = ad[key], ad[key[: -1] + "B"]
        w[mod + ".weight"] = w[mod + ".weight"] + s * (B @ A).T
        n += 1
    assert n, "no lora_embedding_A in the adapter"
    os.makedirs(out, exist_ok=True)
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(w):
        b = np.ascontiguousarray(w[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(w[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    for fn in os.listdir(base):
        if not fn.endswith(".safetensors") and fn != "model.safetensors.index.json":
            shutil.copy(os.path.join(base, fn), out)


if __name__ == "__main__":
    main()
