#!/usr/bin/python3
"""dequant_fp8.py IN_DIR OUT_DIR: an FP8 block-scaled checkpoint (quantization_config quant_method "fp8", DeepSeek-V3
style: F8_E4M3 `X.weight` with F32 `X.weight_scale_inv` in weight_block_size blocks) rewritten as the tensors
convert_hf_to_gguf.py computes from it, so that the unchanged converter can run on Debian's torch 1.13, which has no
float8 dtype to load the original with.

The rewrite is the converter's own formula (llama.cpp's conversion/base.py, ModelBase.dequant_model, dequant_simple):
weight.float() * scale, the scale grid repeated over each block and cut to the weight's shape; a float32 product.
Here the e4m3fn codes are decoded by hand and multiplied in float32 (numpy), which rounds exactly as torch does.
The scale tensors are dropped and quantization_config is removed from config.json; every other tensor keeps its
bytes and every other file is copied.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np


def e4m3fn_table():
    t = np.zeros(256, dtype=np.float32)
    for c in range(256):
        s = -1.0 if c & 0x80 else 1.0
        e, m = (c >> 3) & 0xF, c & 0x7
        if e == 0xF and m == 0x7:
            t[c] = np.nan
        elif e == 0:
            t[c] = s * m * 2.0 ** -9
        else:
            t[c] = s * (1 + m / 8.0) * 2.0 ** (e - 7)
    return t


def read(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    data = buf[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def write(path, tensors):
    header, blobs, pos = {}, [], 0
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def main(src, dst):
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    qc = cfg.pop("quantization_config", None)
    if not qc or qc.get("quant_method") != "fp8":
        raise SystemExit(f"{src}: not an fp8 checkpoint")
    br, bc = qc.get("weight_block_size") or (None, None)
    table = e4m3fn_table()
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        p = os.path.join(src, name)
        if name == "config.json":
            with open(os.path.join(dst, name), "w") as f:
                json.dump(cfg, f, indent=2)
        elif name.endswith(".safetensors"):
            ts = read(p)
            out = {}
            for k, (dtype, shape, raw) in ts.items():
                if k.endswith("_scale_inv"):
                    continue
                if dtype == "F8_E4M3" and k + "_scale_inv" in ts:
                    sd, ss, sraw = ts[k + "_scale_inv"]
                    if sd != "F32":
                        raise SystemExit(f"{p}: {k}_scale_inv is {sd}, expected F32")
                    w = table[np.frombuffer(raw, dtype=np.uint8)].reshape(shape)
                    s = np.frombuffer(sraw, dtype="<f4").reshape(ss)
                    if br is not None:
                        s = np.repeat(np.repeat(s, br, axis=0), bc, axis=1)[: shape[0], : shape[1]]
                    out[k] = ("F32", shape, (w * s).astype("<f4").tobytes())
                else:
                    out[k] = (dtype, shape, raw)
            write(os.path.join(dst, name), out)
        elif name == "model.safetensors.index.json":
            with open(p) as f:
                idx = json.load(f)
            idx["weight_map"] = {k: v for k, v in idx["weight_map"].items() if not k.endswith("_scale_inv")}
            with open(os.path.join(dst, name), "w") as f:
                json.dump(idx, f, indent=2)
        elif os.path.isfile(p):
            shutil.copyfile(p, os.path.join(dst, name))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
