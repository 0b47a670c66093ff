#!/usr/bin/python3
"""Independent safetensors reader for cross-checks (json + numpy only).

Validates the layout on its own (exact tiling of the data section) and prints, in file-data order, one line per
tensor:  name dtype [shape] v0 v1 ...   with values as Python repr of float (floats) or int (integers);
BF16 is widened by shifting into the top half of a float32. First line: metadata as sorted compact JSON.

usage: st_read.py FILE.safetensors
"""
import json
import struct
import sys

import numpy as np

NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
      "U8": "u1", "BOOL": "?"}
SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "F8_E4M3": 1, "F8_E5M2": 1}


def main(path):
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = buf[8 + n:]
    meta = header.pop("__metadata__", {})
    print(json.dumps(meta, sort_keys=True, separators=(",", ":")))
    items = sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[1]["data_offsets"][1], kv[0]))
    pos = 0
    for name, info in items:
        b, e = info["data_offsets"]
        assert b == pos, f"{name}: begins at {b}, expected {pos}"
        count = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        assert e - b == count * SIZE[info["dtype"]], f"{name}: size mismatch"
        pos = e
        raw = data[b:e]
        if info["dtype"] == "BF16":
            vals = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            vals = np.frombuffer(raw, dtype=NP[info["dtype"]])
        out = [repr(float(v)) if vals.dtype.kind == "f" else repr(int(v)) for v in vals]
        print(name, info["dtype"], json.dumps(info["shape"], separators=(",", ":")), *out)
    assert pos == len(data), f"{len(data) - pos} trailing bytes"


if __name__ == "__main__":
    main(sys.argv[1])
