#!/usr/bin/python3
"""make_dora.py ADAPTER_IN ADAPTER_OUT: the same LoRA as a DoRA adapter (use_dora, one magnitude per output feature
of every lora_B, positive and deterministic), for the determinism matrix (tests/mpi/determinism.sh)."""
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import st_io  # noqa: E402

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
t = st_io.read(os.path.join(src, "adapter_model.safetensors"))
out = dict(t)
rng = np.random.default_rng(20261207)
for k, (dt, arr) in sorted(t.items()):
    if k.endswith(".lora_B.weight"):
        mod = k[: -len(".lora_B.weight")]
        out[mod + ".lora_magnitude_vector"] = (dt, (1.0 + rng.random(arr.shape[0])).astype(np.float32))
st_io.write(os.path.join(dst, "adapter_model.safetensors"), out)
with open(os.path.join(src, "adapter_config.json")) as f:
    cfg = json.load(f)
cfg["use_dora"] = True
with open(os.path.join(dst, "adapter_config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
for name in os.listdir(src):
    if name not in ("adapter_model.safetensors", "adapter_config.json"):
        p = os.path.join(src, name)
        if os.path.isfile(p):
            shutil.copy(p, dst)
