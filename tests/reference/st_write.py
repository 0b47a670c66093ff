#!/usr/bin/python3
"""Independent safetensors writer for cross-checks (numpy only, no safetensors package).

Mirrors what the reference library (safetensors' Rust `prepare`/`serialize`, used by safetensors.torch.save_file)
writes: tensors sorted by its Dtype enum order descending, then by name; header = compact serde_json with
"__metadata__" first and per tensor {"dtype","shape","data_offsets"}; header padded with spaces to a multiple of 8.

usage: st_write.py OUT.safetensors      writes the fixed test set below
"""
import json
import struct
import sys

import numpy as np

# Position in safetensors' Rust `enum Dtype` (derives Ord; serialize sorts descending by it).
RUST_DTYPE_ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
                    "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
                    "F64", "I64", "U64"]


def f32_to_bf16_bits(a):
    """Round to nearest even on the upper 16 bits (NaN not needed here)."""
    u = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def tensors():
    """name -> (dtype string, shape, raw little-endian bytes)."""
    bf = f32_to_bf16_bits(np.array([1.0, -2.5, 3.25, 0.0, 1e-3, 65504.0], dtype=np.float32))
    return {
        "b.weight": ("BF16", [2, 3], bf.astype("<u2").tobytes()),
        "a.bias": ("F32", [3], np.array([0.5, -1.0, 2.0], dtype="<f4").tobytes()),
        "c.idx": ("I64", [2], np.array([7, -9], dtype="<i8").tobytes()),
        "z": ("F16", [], np.array(1.5, dtype="<f2").tobytes()),
        "e": ("U8", [0], b""),
    }


def serialize(ts, metadata):
    names = sorted(ts, key=lambda n: (-RUST_DTYPE_ORDER.index(ts[n][0]), n.encode("utf-8")))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    off = 0
    data = b""
    for n in names:
        dt, shape, raw = ts[n]
        header[n] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    hb = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return struct.pack("<Q", len(hb)) + hb + data


if __name__ == "__main__":
    with open(sys.argv[1], "wb") as f:
        f.write(serialize(tensors(), {"format": "pt"}))
