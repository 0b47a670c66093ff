#!/usr/bin/python3
"""Writes a legacy llama-imatrix .dat for the demo model (4 layers, hidden 256, ffn 768): random importances."""
import struct, sys, random
# legacy llama-imatrix .dat: n_entries, per entry (len,name,ncall,nval,values), then last chunk count + dataset
random.seed(1)
L, H, I = 4, 256, 768
ents = []
for l in range(L):
    for n, ne0 in [("attn_q", H), ("attn_k", H), ("attn_v", H), ("attn_output", H), ("ffn_gate", H), ("ffn_up", H), ("ffn_down", I)]:
        ents.append((f"blk.{l}.{n}.weight", [random.uniform(0.1, 5.0) for _ in range(ne0)]))
ents.append(("output.weight", [random.uniform(0.1, 5.0) for _ in range(H)]))
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<i", len(ents)))
    for name, v in ents:
        b = name.encode(); f.write(struct.pack("<i", len(b))); f.write(b)
        f.write(struct.pack("<ii", 2, len(v))); f.write(struct.pack(f"<{len(v)}f", *[x * 2 for x in v]))
    f.write(struct.pack("<i", 10)); d = b"demo.txt"; f.write(struct.pack("<i", len(d))); f.write(d)
