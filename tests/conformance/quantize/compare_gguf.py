#!/usr/bin/python3
"""compare_gguf.py OURS REF [--label L] [--unordered] [--trailing-ones] [--no-data] [--alt REF2]

Independent GGUF reader (written from the GGUF v3 layout, no shardforge code): compares two single-file GGUFs
and prints every difference, one line each: KV list (key, value type, value, order), tensor list (name, order,
ggml type, shape), tensor data bytes (the region from a tensor's offset to the next tensor's, padding included,
so it is independent of any type-size table), and the header/tail layout. Exit 0 when identical, 1 otherwise.
--unordered: KV order and tensor order (hence offsets) differences are printed as notes and do not fail.
--trailing-ones: shapes that differ only by trailing 1s (n_dims: gguf-py writes every dimension of a [1, n] tensor,
  ggml's writer drops trailing 1s) are printed as notes and do not fail.
--no-data: tensor data is not compared (e.g. llama-quantize run on a differently rounded input).
--alt REF2: a tensor whose type differs from REF's but equals REF2's is compared with REF2's (type and data; a
  note says so). For tensors llama-quantize copies unquantized from a BF16 intermediate (REF2) while REF was
  quantized from an F32 one.
"""
import struct
import sys

GGML_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
              11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS",
              18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8",
              25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0",
              39: "MXFP4", 40: "NVFP4", 41: "Q1_0", 42: "Q2_0"}
VT = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32", 7: "bool", 8: "str", 9: "arr",
      10: "u64", 11: "i64", 12: "f64"}
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class Reader:
    def __init__(self, buf):
        self.b = buf
        self.p = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.b[self.p:self.p + n]
        self.p += n
        return s.decode("utf-8", errors="replace")

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et = self.take("<I")
            n = self.take("<Q")
            if et in SCALAR:  # raw slice: cheap and exact
                sz = struct.calcsize(SCALAR[et])
                raw = bytes(self.b[self.p:self.p + n * sz])
                self.p += n * sz
                return ("arr", VT[et], n, raw)
            return ("arr", VT.get(et, et), n, tuple(self.value(et) for _ in range(n)))
        v = self.take(SCALAR[t])
        if t == 6:  # compare floats bit-exactly
            return ("f32bits", struct.pack("<f", v).hex(), v)
        return v


def parse(path):
    with open(path, "rb") as f:
        buf = f.read()
    r = Reader(buf)
    if buf[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    r.p = 4
    version = r.take("<I")
    n_t = r.take("<Q")
    n_kv = r.take("<Q")
    kvs = []
    for _ in range(n_kv):
        k = r.string()
        t = r.take("<I")
        kvs.append((k, VT.get(t, t), r.value(t)))
    tensors = []
    for _ in range(n_t):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        tt = r.take("<I")
        off = r.take("<Q")
        tensors.append({"name": name, "ne": ne, "type": tt, "off": off})
    align = 32
    for k, _, v in kvs:
        if k == "general.alignment":
            align = v
    data = (r.p + align - 1) // align * align
    offs = sorted(t["off"] for t in tensors)
    ends = {o: e for o, e in zip(offs, offs[1:] + [len(buf) - data])}
    for t in tensors:
        t["data"] = buf[data + t["off"]: data + ends[t["off"]]]
    return {"version": version, "kvs": kvs, "tensors": tensors, "header_len": r.p, "data_start": data,
            "size": len(buf), "buf": buf}


def show(v):
    if isinstance(v, tuple) and v and v[0] == "f32bits":
        return f"{v[2]!r} (0x{v[1]})"
    if isinstance(v, tuple) and v and v[0] == "arr":
        return f"[{v[1]} x {v[2]}]"
    s = repr(v)
    return s if len(s) < 80 else s[:77] + "..."


def tname(t):
    return GGML_TYPES.get(t, str(t))


def main():
    args = sys.argv[1:]
    label = ""
    if "--label" in args:
        i = args.index("--label")
        label = args[i + 1] + ": "
        del args[i:i + 2]
    unordered = "--unordered" in args
    trailing_ones = "--trailing-ones" in args
    no_data = "--no-data" in args
    args = [x for x in args if x not in ("--unordered", "--trailing-ones", "--no-data")]
    alt = None
    if "--alt" in args:
        i = args.index("--alt")
        alt = parse(args[i + 1])
        del args[i:i + 2]
    ours_p, ref_p = args
    a, b = parse(ours_p), parse(ref_p)
    diffs = []
    notes = []
    if a["version"] != b["version"]:
        diffs.append(f"GGUF version: ours {a['version']} vs llama {b['version']}")
    # KVs: presence, value type, value, then order
    ka = {k: (t, v) for k, t, v in a["kvs"]}
    kb = {k: (t, v) for k, t, v in b["kvs"]}
    for k, t, v in b["kvs"]:
        if k not in ka:
            diffs.append(f"KV {k}: missing in ours (llama {t} {show(v)})")
    for k, t, v in a["kvs"]:
        if k not in kb:
            diffs.append(f"KV {k}: extra in ours ({t} {show(v)})")
        elif kb[k] != (t, v):
            tb, vb = kb[k]
            if tb != t:
                diffs.append(f"KV {k}: type ours {t} vs llama {tb}")
            elif isinstance(v, tuple) and v and v[0] == "arr" and isinstance(vb, tuple) and v[2] == vb[2]:
                ea, eb = v[3], vb[3]
                first = next((i for i in range(min(len(ea), len(eb))) if ea[i] != eb[i]), None)
                diffs.append(f"KV {k}: array contents differ (first at element/byte {first})")
            else:
                diffs.append(f"KV {k}: ours {show(v)} vs llama {show(vb)}")
    common_a = [k for k, _, _ in a["kvs"] if k in kb]
    common_b = [k for k, _, _ in b["kvs"] if k in ka]
    if common_a != common_b:
        (notes if unordered else diffs).append("KV order: ours " + ",".join(common_a) + "\n           llama " + ",".join(common_b))
    # tensors
    ta = {t["name"]: t for t in a["tensors"]}
    tb = {t["name"]: t for t in b["tensors"]}
    for t in b["tensors"]:
        if t["name"] not in ta:
            diffs.append(f"tensor {t['name']}: missing in ours")
    for t in a["tensors"]:
        if t["name"] not in tb:
            diffs.append(f"tensor {t['name']}: extra in ours")
    na = [t["name"] for t in a["tensors"] if t["name"] in tb]
    nb = [t["name"] for t in b["tensors"] if t["name"] in ta]
    if na != nb:
        first = next(i for i in range(len(na)) if na[i] != nb[i])
        (notes if unordered else diffs).append(f"tensor order: first difference at #{first}: ours {na[first]} vs llama {nb[first]}")
    n_data = 0
    off_diffs = []
    for t in a["tensors"]:
        u = tb.get(t["name"])
        if u is None:
            continue
        if t["ne"] != u["ne"]:
            def strip(ne):
                ne = list(ne)
                while len(ne) > 1 and ne[-1] == 1:
                    ne.pop()
                return ne
            (notes if trailing_ones and strip(t["ne"]) == strip(u["ne"]) else diffs).append(
                f"tensor {t['name']}: shape ours {t['ne']} vs llama {u['ne']}")
        if t["type"] != u["type"] and alt is not None:
            v = next((x for x in alt["tensors"] if x["name"] == t["name"]), None)
            if v is not None and v["type"] == t["type"] and v["ne"] == t["ne"]:
                notes.append(f"tensor {t['name']}: {tname(t['type'])} as in the alternative reference "
                             f"(main reference: {tname(u['type'])})")
                u = dict(v, off=t["off"])
        if t["type"] != u["type"]:
            diffs.append(f"tensor {t['name']}: type ours {tname(t['type'])} vs llama {tname(u['type'])}")
        elif not no_data and t["data"] != u["data"]:
            x, y = t["data"], u["data"]
            nd = sum(1 for i in range(min(len(x), len(y))) if x[i] != y[i])
            first = next((i for i in range(min(len(x), len(y))) if x[i] != y[i]), min(len(x), len(y)))
            diffs.append(f"tensor {t['name']} ({tname(t['type'])}): data differs: {nd} of {len(x)} bytes "
                         f"(llama {len(y)}), first at byte {first}")
            n_data += 1
        elif t["off"] != u["off"] and na == nb:
            off_diffs.append(f"tensor {t['name']}: offset ours {t['off']} vs llama {u['off']}")
    # offsets follow from order and sizes: a tensor taken from --alt legitimately moves the ones after it
    if not any("alternative reference" in x for x in notes):
        diffs += off_diffs
    if not diffs and not notes and not no_data and a["buf"] != b["buf"]:
        diffs.append(f"files differ outside KVs/tensor data (ours {a['size']} B, llama {b['size']} B, "
                     f"header {a['header_len']} vs {b['header_len']})")
    for d in diffs:
        print(f"  {label}{d}")
    for d in notes:
        print(f"  {label}note: {d}")
    if not diffs:
        what = "identical" if not notes and not no_data else "equal" + (" (see notes)" if notes else "") + \
            (" (data not compared)" if no_data else "")
        print(f"  {label}{what} ({len(a['tensors'])} tensors, {len(a['kvs'])} KVs, {a['size']} bytes"
              f"{', byte-identical files' if a['buf'] == b['buf'] else ''})")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
