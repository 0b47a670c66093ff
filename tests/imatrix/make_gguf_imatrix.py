#!/usr/bin/python3
"""make_gguf_imatrix.py OUT.gguf [--experts N] [--layers L]: an importance matrix in the GGUF format of current
llama-imatrix, for `shardforge demo` shapes (hidden 256, ffn 768; --experts N for the MoE demos' expert tensors
ffn_{gate,up,down}_exps). Random importances, written from the format as llama.cpp's common/imatrix-loader.cpp
reads it: per entry the F32 tensors <name>.in_sum2 (ne [ne0, n_mat], sums of squared activations) and
<name>.counts (ne [1, n_mat], tokens per matrix); KVs general.type = "imatrix", imatrix.datasets,
imatrix.chunk_count, imatrix.chunk_size. The last expert of each expert tensor has count 0 (the loader then uses 1.0
for its importances), the others differ, so the per-expert division is exercised.
"""
import argparse
import random
import struct

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--experts", type=int, default=0)
ap.add_argument("--layers", type=int, default=2)
a = ap.parse_args()
random.seed(7)
H, I = 256, 768
ents = []  # (name, ne0, counts)
for l in range(a.layers):
    for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
        ents.append((f"blk.{l}.{n}.weight", H, [float(512 + 64 * l)]))
    if a.experts:
        cnt = [float(100 + 37 * e) for e in range(a.experts - 1)] + [0.0]
        for n, ne0 in (("ffn_gate_exps", H), ("ffn_up_exps", H), ("ffn_down_exps", I)):
            ents.append((f"blk.{l}.{n}.weight", ne0, cnt))
    else:
        for n, ne0 in (("ffn_gate", H), ("ffn_up", H), ("ffn_down", I)):
            ents.append((f"blk.{l}.{n}.weight", ne0, [float(512 + 64 * l)]))
ents.append(("output.weight", H, [512.0]))


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


kvs = gstr("general.type") + struct.pack("<I", 8) + gstr("imatrix")
kvs += gstr("imatrix.datasets") + struct.pack("<IIQ", 9, 8, 1) + gstr("demo-calibration.txt")
kvs += gstr("imatrix.chunk_count") + struct.pack("<II", 4, 12)
kvs += gstr("imatrix.chunk_size") + struct.pack("<II", 4, 512)
tensors, info, off = [], b"", 0
for name, ne0, cnt in ents:
    sums = [random.uniform(0.1, 5.0) * max(c, 1.0) for c in cnt for _ in range(ne0)]
    for suffix, ne, vals in ((".in_sum2", [ne0, len(cnt)], sums), (".counts", [1, len(cnt)], cnt)):
        data = struct.pack(f"<{len(vals)}f", *vals)
        info += gstr(name + suffix) + struct.pack("<I", 2) + struct.pack("<QQ", *ne) + struct.pack("<IQ", 0, off)
        tensors.append(data)
        off += (len(data) + 31) // 32 * 32
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 4) + kvs + info
with open(a.out, "wb") as f:
    f.write(head + b"\0" * (-len(head) % 32))
    for d in tensors:
        f.write(d + b"\0" * (-len(d) % 32))
