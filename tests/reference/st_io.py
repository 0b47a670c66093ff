"""Tiny safetensors / bf16 helpers for the reference scripts (numpy only, no torch, no safetensors package).

Written from the safetensors format description: u64 little-endian header length N, N bytes of JSON
({"__metadata__": {...}, name: {"dtype", "shape", "data_offsets": [begin, end]}}), then the data section.
"""
import json
import struct

import numpy as np

_NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
       "U8": np.uint8, "I8": np.int8}


def f32_to_bf16_bits(x):
    """Round-to-nearest-even f32 -> bf16, as uint16 bits (integer arithmetic; NaN keeps a quiet NaN)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    r = np.where(nan, ((u >> 16) | 0x40) & 0xFFFF, r)
    return r.astype(np.uint16)


def bf16_bits_to_f32(b):
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def read(path):
    """-> dict name -> (dtype string, np array: f32 for F32/F16/BF16 (exact widening), native otherwise)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        buf = data[b:e]
        dt = info["dtype"]
        if dt == "BF16":
            arr = bf16_bits_to_f32(np.frombuffer(buf, dtype="<u2")).reshape(shape)
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float32).reshape(shape)
        else:
            arr = np.frombuffer(buf, dtype=np.dtype(_NP[dt]).newbyteorder("<")).reshape(shape).copy()
        out[name] = (dt, arr)
    return out


def write(path, tensors, metadata=None):
    """tensors: dict name -> (dtype string, array). F32/F16 arrays are cast (RNE); BF16 arrays are f32 values
    rounded with f32_to_bf16_bits, or uint16 arrays taken as raw bits."""
    names = sorted(tensors)
    blobs, hdr, off = [], {}, 0
    if metadata:
        hdr["__metadata__"] = metadata
    for name in names:
        dt, arr = tensors[name]
        arr = np.asarray(arr)
        if dt == "BF16":
            bits = arr if arr.dtype == np.uint16 else f32_to_bf16_bits(arr)
            blob = np.ascontiguousarray(bits, dtype="<u2").tobytes()
        else:
            blob = np.ascontiguousarray(arr, dtype=np.dtype(_NP[dt]).newbyteorder("<")).tobytes()
        hdr[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for blob in blobs:
            f.write(blob)
