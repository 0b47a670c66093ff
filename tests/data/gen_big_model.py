#!/usr/bin/env python3
"""Scale a tiny `shardforge demo` model (base + adapter) up to a large one in seconds, for memory tests.

Every tensor keeps its name; its dimensions equal to the tiny hidden size, intermediate size or key/value width are
multiplied (--scale for hidden and kv width, --intermediate for the MLP size). The safetensors files get correct
headers and sparse (all-zero) data: written with truncate, so a multi-GB model costs no disk I/O to generate and
reads as zeros. config.json gets the new sizes; tokenizer and adapter config are copied. Not realistic weights:
only their sizes matter here.

    gen_big_model.py TINY_DIR OUT_DIR --scale 16 --intermediate 14336
"""
import argparse
import json
import os
import shutil
import struct

DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}


def scale_file(src, dst, dim_map):
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    out, offset = {}, 0
    for name, t in header.items():
        if name == "__metadata__":
            out[name] = t
            continue
        shape = [dim_map.get(d, d) for d in t["shape"]]
        nbytes = DTYPE_SIZE[t["dtype"]]
        for d in shape:
            nbytes *= d
        out[name] = {"dtype": t["dtype"], "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(out, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)
    return offset


def scale_dir(src, dst, dim_map, config_edit):
    os.makedirs(dst, exist_ok=True)
    total = 0
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if name.endswith(".safetensors"):
            total += scale_file(s, d, dim_map)
        elif name == "config.json" and config_edit:
            cfg = json.load(open(s))
            config_edit(cfg)
            json.dump(cfg, open(d, "w"), indent=2)
        elif name != "model.safetensors.index.json":
            shutil.copyfile(s, d)
    idx = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(idx):
        j = json.load(open(idx))
        j["metadata"] = {"total_size": total}
        json.dump(j, open(os.path.join(dst, "model.safetensors.index.json"), "w"), indent=2)
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tiny")
    ap.add_argument("out")
    ap.add_argument("--scale", type=int, default=16)
    ap.add_argument("--intermediate", type=int, default=0)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.tiny, "base", "config.json")))
    h, i = cfg["hidden_size"], cfg["intermediate_size"]
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    kv_dim = kv * (h // heads)
    big_i = a.intermediate or i * a.scale
    dim_map = {h: h * a.scale, i: big_i, kv_dim: kv_dim * a.scale}
    if len(dim_map) != 3 or cfg["vocab_size"] in dim_map:
        raise SystemExit("ambiguous tiny dimensions: use distinct hidden, intermediate, kv and vocab sizes")

    def edit(c):
        c["hidden_size"], c["intermediate_size"] = h * a.scale, big_i
        c.pop("head_dim", None)

    n = scale_dir(os.path.join(a.tiny, "base"), os.path.join(a.out, "base"), dim_map, edit)
    scale_dir(os.path.join(a.tiny, "adapter"), os.path.join(a.out, "adapter"), dim_map, None)
    print(n)


if __name__ == "__main__":
    main()
