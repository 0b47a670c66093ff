#!/usr/bin/python3
"""inspect_outputs.py --shardforge BIN --work DIR

`shardforge inspect` on every kind of output an export writes: safetensors (sharded, as a file and as a model
directory), gguf:<type>, a split GGUF (each file), gguf-lora and bnb-nf4. Each inspect must exit 0 and print what
an independent reader finds in the file:
- GGUF: the whole dump, line for line, as llama.cpp's gguf-py/gguf/scripts/gguf_dump.py prints it by default
  (values as Python's repr(), strings cut to 57 code points + "...", arrays to 6 elements), built here from
  tests/conformance/quantize/compare_gguf.py's GGUF reader;
- safetensors: per file "NAME: N tensors, SIZE bytes" and one "  name  DTYPE [shape]" line per tensor in data
  order, from the JSON header read here; then "total: N tensors, E elements" and one line per dtype (count, bytes).
Exit 0 = all checks passed, 1 = a check failed.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "quantize"))
from compare_gguf import GGML_TYPES, parse as parse_gguf  # noqa: E402  (the independent GGUF reader)

GGUF_TYPE = {"u8": "UINT8", "i8": "INT8", "u16": "UINT16", "i16": "INT16", "u32": "UINT32", "i32": "INT32",
             "f32": "FLOAT32", "bool": "BOOL", "str": "STRING", "u64": "UINT64", "i64": "INT64", "f64": "FLOAT64"}
ELEM_FMT = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i", "f32": "<f", "bool": "<?",
            "u64": "<Q", "i64": "<q", "f64": "<d"}
ST_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
           "F8_E4M3": 1, "F8_E5M2": 1}
FAILS = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what)
    if not ok:
        FAILS.append(what)


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        print(f"FAIL: {' '.join(cmd)} exited {p.returncode}\n{p.stderr[-2000:]}")
        sys.exit(1)
    return p.stdout


def py_repr(v):
    """repr() of a value as gguf_dump.py prints it (bool -> True/False, float -> shortest round trip)."""
    return repr(v)


def elem_values(v):
    """The elements of an array value from compare_gguf's reader."""
    _, et, n, raw = v
    if et == "str":
        return list(raw)
    size = struct.calcsize(ELEM_FMT[et])
    return [struct.unpack_from(ELEM_FMT[et], raw, i * size)[0] for i in range(n)]


def value_text(t, v):
    if t == "str":
        s = v if len(v) <= 60 else v[:57] + "..."
        return py_repr(s)
    if t == "arr":
        vals = elem_values(v)
        return "[" + ", ".join(py_repr(x) for x in vals[:6]) + (", ...]" if len(vals) > 6 else "]")
    if t == "f32":
        return py_repr(v[2])
    return py_repr(v)


def expected_gguf_dump(path):
    g = parse_gguf(path)
    lines = ["* File is LITTLE endian, script is running on a LITTLE endian host.",
             f"* Dumping {len(g['kvs']) + 3} key/value pair(s)"]
    row = lambda n, typ, count, key, val: f"  {n:>5}: {typ:<10} | {count:>8} | {key} = {val}"
    lines.append(row(1, "UINT32", 1, "GGUF.version", g["version"]))
    lines.append(row(2, "UINT64", 1, "GGUF.tensor_count", len(g["tensors"])))
    lines.append(row(3, "UINT64", 1, "GGUF.kv_count", len(g["kvs"])))
    for i, (k, t, v) in enumerate(g["kvs"]):
        typ = f"[{GGUF_TYPE[v[1]]}]" if t == "arr" else GGUF_TYPE[t]
        count = v[2] if t == "arr" else 1
        lines.append(row(i + 4, typ, count, k, value_text(t, v)))
    lines.append(f"* Dumping {len(g['tensors'])} tensor(s)")
    for i, tn in enumerate(g["tensors"]):
        ne = (tn["ne"] + [1, 1, 1, 1])[:4]
        n = 1
        for x in ne:
            n *= x
        dims = ", ".join(f"{x:>5}" for x in ne)
        lines.append(f"  {i + 1:>5}: {n:>10} | {dims} | {GGML_TYPES[tn['type']]:<7} | {tn['name']}")
    return lines, g


def check_gguf(sf, path, what):
    got = run([sf, "inspect", path]).splitlines()
    want, g = expected_gguf_dump(path)
    diff = [(i, w, x) for i, (w, x) in enumerate(zip(want, got)) if w != x]
    ok = not diff and len(got) == len(want)
    check(ok, f"inspect {what} ({os.path.basename(path)}): {len(g['kvs'])} KVs and {len(g['tensors'])} tensors "
              "printed as gguf_dump.py prints them")
    if not ok:
        for i, w, x in diff[:5]:
            print(f"   line {i + 1}: expected {w!r}\n   line {i + 1}: got      {x!r}")
        if len(got) != len(want):
            print(f"   {len(got)} lines, expected {len(want)}")
    return g


def st_blocks(path):
    """Expected per-file lines of a .safetensors and its (count, elements, {dtype: [count, bytes]})."""
    buf = open(path, "rb").read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    header.pop("__metadata__", None)
    items = sorted(header.items(), key=lambda kv: (kv[1]["data_offsets"][0], kv[0]))
    lines = [f"{os.path.basename(path)}: {len(items)} tensors, {len(buf)} bytes"]
    elems, by_dtype = 0, {}
    for name, e in items:
        lines.append(f"  {name}  {e['dtype']} [{', '.join(str(d) for d in e['shape'])}]")
        k = 1
        for d in e["shape"]:
            k *= d
        elems += k
        c = by_dtype.setdefault(e["dtype"], [0, 0])
        c[0] += 1
        c[1] += e["data_offsets"][1] - e["data_offsets"][0]
        if e["data_offsets"][1] - e["data_offsets"][0] != k * ST_SIZE[e["dtype"]]:
            check(False, f"{path}: {name}: data size does not match dtype and shape")
    return lines, len(items), elems, by_dtype


def check_safetensors(sf, target, files, what, head=None):
    got = run([sf, "inspect", target]).splitlines()
    want, total_n, total_e, by_dtype = ([head] if head else []), 0, 0, {}
    for f in files:
        lines, n, e, bd = st_blocks(f)
        want += lines
        total_n += n
        total_e += e
        for k, (c, b) in bd.items():
            by_dtype.setdefault(k, [0, 0])
            by_dtype[k][0] += c
            by_dtype[k][1] += b
    want.append(f"total: {total_n} tensors, {total_e} elements")
    body, tail = got[:len(want)], got[len(want):]
    ok = body == want and sorted(tail) == sorted(f"  {k}: {c} tensors, {b} bytes" for k, (c, b) in by_dtype.items())
    check(ok, f"inspect {what}: {len(files)} file(s), {total_n} tensors ({', '.join(sorted(by_dtype))}) with "
              "names, dtypes, shapes, sizes and totals")
    if not ok:
        for i, (w, x) in enumerate(zip(want, body)):
            if w != x:
                print(f"   line {i + 1}: expected {w!r}\n   line {i + 1}: got      {x!r}")
                break
        print(f"   got {len(got)} lines (expected {len(want)} + {len(by_dtype)} dtype lines); tail: {tail}")
    return by_dtype


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardforge", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    sf, w = a.shardforge, a.work
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    run([sf, "demo", f"{w}/d", "--layers", "2"])
    base, adapter = f"{w}/d/base", f"{w}/d/adapter"
    common = ["export", "--base", base, "--adapter", adapter, "--name", "m"]
    run([sf, *common, "--out", f"{w}/o", "--format", "safetensors,gguf:q4_k_m,gguf-lora", "--max-shard-size", "1MB"])
    run([sf, *common, "--out", f"{w}/split", "--format", "gguf:q8_0", "--split-max-tensors", "8"])
    run([sf, *common, "--out", f"{w}/nf4", "--format", "bnb-nf4"])

    # safetensors: every shard alone, and the directory (the index's order of files: by name here).
    shards = sorted(f"{w}/o/{f}" for f in os.listdir(f"{w}/o") if f.endswith(".safetensors"))
    check(len(shards) >= 2, f"--max-shard-size 1MB wrote {len(shards)} safetensors shards (>= 2)")
    for s in shards:
        check_safetensors(sf, s, [s], f"safetensors shard {os.path.basename(s)}")
    check_safetensors(sf, f"{w}/o", shards, "the safetensors model directory", head=f"model directory {w}/o")

    g = check_gguf(sf, f"{w}/o/m.Q4_K_M.gguf", "gguf:q4_k_m")
    types = {GGML_TYPES[t["type"]] for t in g["tensors"]}
    check({"Q4_K", "Q6_K", "F32"} <= types, f"the gguf:q4_k_m dump lists its k-quant mixture ({sorted(types)})")
    g = check_gguf(sf, f"{w}/o/m-lora-f32.gguf", "gguf-lora")
    check(("adapter.type", "str", "lora") in g["kvs"] and all(t["name"].endswith((".lora_a", ".lora_b"))
                                                                for t in g["tensors"]),
          "the gguf-lora dump is an adapter (adapter.type = 'lora', only .lora_a/.lora_b tensors)")

    parts = sorted(f for f in os.listdir(f"{w}/split") if f.endswith(".gguf"))
    check(len(parts) >= 3, f"--split-max-tensors 8 wrote {len(parts)} files (>= 3)")
    n_split = 0
    for i, p in enumerate(parts):
        g = check_gguf(sf, f"{w}/split/{p}", f"split GGUF part {i + 1}/{len(parts)}")
        kv = {k: v for k, _, v in g["kvs"]}
        check((kv.get("split.no"), kv.get("split.count")) == (i, len(parts)),
              f"part {i + 1}: split.no = {kv.get('split.no')}, split.count = {kv.get('split.count')}")
        n_split += len(g["tensors"])
    check(n_split == kv.get("split.tensors.count"), f"the parts' tensors add up to split.tensors.count ({n_split})")

    nf4 = sorted(f"{w}/nf4/{f}" for f in os.listdir(f"{w}/nf4") if f.endswith(".safetensors"))
    bd = {}
    for s in nf4:
        bd = check_safetensors(sf, s, [s], f"bnb-nf4 {os.path.basename(s)}")
    check("U8" in bd and "F32" in bd, f"the bnb-nf4 dump shows packed U8 weights and F32 absmax/quant_map ({sorted(bd)})")
    check_safetensors(sf, f"{w}/nf4", nf4, "the bnb-nf4 model directory", head=f"model directory {w}/nf4")
    if FAILS:
        print(f"{len(FAILS)} check(s) failed")
        sys.exit(1)
    print("all checks passed")
    shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
