#!/usr/bin/python3
"""drop_mtp.py SRC DST: copies a one-file HF checkpoint without its mtp.* tensors (as transformers' save_pretrained
writes Qwen3-Next, whose model class ignores them); the JSON files are copied as they are."""
import json
import os
import shutil
import struct
import sys


def main():
    src, dst = sys.argv[1:3]
    os.makedirs(dst, exist_ok=True)
    for f in os.listdir(src):
        if f.endswith(".json") and f != "model.safetensors.index.json":
            shutil.copy(os.path.join(src, f), dst)
    with open(os.path.join(src, "model.safetensors"), "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out, blobs, off = {}, [], 0
    for name, info in header.items():
        if name == "__metadata__":
            out[name] = info
            continue
        if name.startswith("mtp."):
            continue
        s0, s1 = info["data_offsets"]
        blobs.append(data[s0:s1])
        out[name] = {**info, "data_offsets": [off, off + s1 - s0]}
        off += s1 - s0
    if len(out) == len(header):
        sys.exit(f"{src}: no mtp.* tensors to drop")
    h = json.dumps(out).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(dst, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    main()
