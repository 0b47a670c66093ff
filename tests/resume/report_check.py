"""Checks a shardforge HDF5 run report against the files it describes (docs/engine.md, run report), independently:
every row's SHA-256 equals hashlib's over the bytes at (file, offset, nbytes); the rows are exactly the tensors of
the safetensors shards (names, offsets, sizes from their headers) and as many as each GGUF header declares; NaN
counts equal numpy's over the written values; Q8_0 quantization error equals a numpy dequantization against the f32
safetensors values; the LoRA delta ratio equals ||merged - base|| / ||base|| from the base and output files; the
progress JSON lines parse and their final totals match the report.
Usage: report_check.py RUN.h5 OUT_DIR BASE_DIR PROGRESS.jsonl N_RANKS"""
import glob, hashlib, json, math, os, struct, sys

import h5py
import numpy as np

h5, out, base, prog, nranks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
fails = []


def check(cond, msg):
    if not cond:
        fails.append(msg)


def st_tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack_from("<Q", b)[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    res = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        dt = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}[v["dtype"]]
        a = np.frombuffer(raw, dtype=dt)
        if v["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        res[k] = (8 + n + s, e - s, a.astype(np.float32).reshape(v["shape"]), v["dtype"])
    return res


f = h5py.File(h5, "r")
t = f["tensors"]
n = t["name"].shape[0]
rows = [dict(name=t["name"][i].decode(), file=t["file"][i].decode(), type=t["type"][i].decode(),
             offset=int(t["offset"][i]), nbytes=int(t["nbytes"][i]), sha=bytes(t["sha256"][i]),
             nan=int(t["nan_count"][i]), rmse=float(t["quant_rel_rmse"][i]), delta=float(t["delta_norm_ratio"][i]),
             rank=int(t["rank"][i]), seconds=float(t["seconds"][i])) for i in range(n)]
check(int(f.attrs["tensors"]) == n, "attribute tensors != rows")
check(int(f.attrs["ranks"]) == nranks, f"attribute ranks {f.attrs['ranks']} != {nranks}")
check(sorted({r["rank"] for r in rows}) == list(range(nranks)), "not every rank wrote rows")
check(all(r["seconds"] >= 0 for r in rows), "negative seconds")
check(int(f.attrs["bytes_written"]) == sum(r["nbytes"] for r in rows), "bytes_written != sum of nbytes")

# 1. Checksums against the files' bytes.
for r in rows:
    with open(os.path.join(out, r["file"]), "rb") as fh:
        fh.seek(r["offset"])
        data = fh.read(r["nbytes"])
    check(len(data) == r["nbytes"], f"{r['name']}: short file")
    check(hashlib.sha256(data).digest() == r["sha"], f"{r['file']}:{r['name']}: sha256 differs from the file bytes")

# 2. Rows are exactly the outputs' tensors.
st = {}
for p in sorted(glob.glob(out + "/*.safetensors")):
    for k, v in st_tensors(p).items():
        st[(os.path.basename(p), k)] = v
st_rows = {(r["file"], r["name"]): r for r in rows if r["file"].endswith(".safetensors")}
check(set(st_rows) == set(st), f"safetensors rows differ: {len(st_rows)} rows vs {len(st)} tensors")
for key, (off, nb, vals, dt) in st.items():
    r = st_rows.get(key)
    if r:
        check((r["offset"], r["nbytes"], r["type"]) == (off, nb, dt), f"{key}: offset/size/type differ")
        check(r["nan"] == int(np.isnan(vals).sum()), f"{key}: nan_count {r['nan']} != {int(np.isnan(vals).sum())}")
        check(math.isnan(r["rmse"]), f"{key}: unquantized tensor has a quantization error")
for g in glob.glob(out + "/*.gguf"):
    hdr = open(g, "rb").read(24)
    n_tensors = struct.unpack_from("<Q", hdr, 8)[0]
    got = sum(1 for r in rows if r["file"] == os.path.basename(g))
    check(got == n_tensors, f"{g}: {got} rows, header declares {n_tensors} tensors")

# 3. NaNs injected in model.norm.weight (3) show up in both outputs.
check(sum(r["nan"] for r in rows) == 6, f"total NaN count {sum(r['nan'] for r in rows)} != 6")

# 4. Q8_0 error: dequantize in numpy, compare with the f32 safetensors tensor holding the same values.
by_numel = {}
for key, (_, _, vals, _) in st.items():
    by_numel.setdefault(vals.size, []).append(vals.reshape(-1))
checked = 0
for r in rows:
    if r["type"] != "Q8_0":
        if r["file"].endswith(".gguf"):
            check(math.isnan(r["rmse"]), f"{r['name']}: {r['type']} tensor has a quantization error")
        continue
    with open(os.path.join(out, r["file"]), "rb") as fh:
        fh.seek(r["offset"])
        raw = np.frombuffer(fh.read(r["nbytes"]), dtype=np.uint8).reshape(-1, 34)
    d = raw[:, :2].copy().view(np.float16).astype(np.float32)
    q = raw[:, 2:].copy().view(np.int8).astype(np.float32)
    deq = (q * d).reshape(-1)
    best = min((math.sqrt(float(((deq.astype(np.float64) - x) ** 2).sum()) / float((x.astype(np.float64) ** 2).sum()))
                for x in by_numel.get(deq.size, [])), default=None)
    if best is not None and best < 0.02:  # the same values (Q/K rows are permuted in GGUF: no exact partner)
        checked += 1
        check(abs(best - r["rmse"]) <= 1e-3 * best + 1e-7, f"{r['name']}: quant_rel_rmse {r['rmse']} != numpy {best}")
check(checked >= 10, f"only {checked} Q8_0 tensors could be checked")

# 5. LoRA delta ratio of merged tensors: from the base (bf16) and the f32 safetensors output.
base_t = {}
for p in glob.glob(base + "/*.safetensors"):
    for k, v in st_tensors(p).items():
        base_t[k] = v[2]
n_delta = 0
for (fname, name), r in st_rows.items():
    if name in base_t and "proj" in name:
        w0 = base_t[name].astype(np.float64)
        w1 = st[(fname, name)][2].astype(np.float64)
        want = float(np.linalg.norm(w1 - w0) / np.linalg.norm(w0))
        check(abs(r["delta"] - want) <= 1e-4 * want + 1e-7, f"{name}: delta_norm_ratio {r['delta']} != numpy {want}")
        n_delta += 1
    elif "norm" in name:
        check(math.isnan(r["delta"]), f"{name}: unmerged tensor has a delta ratio")
check(n_delta >= 7, f"only {n_delta} merged tensors checked")

# 6. Progress lines.
lines = [json.loads(l) for l in open(prog)]
check(len(lines) >= 1 and lines[-1]["final"], "no final progress line")
last = lines[-1]
check(last["tensors_done"] == last["tensors_total"] == n, f"progress tensors {last['tensors_done']}/{last['tensors_total']} != {n}")
check(last["bytes_written"] + last["bytes_resumed"] == last["bytes_total"] == sum(r["nbytes"] for r in rows),
      "progress bytes totals differ from the report")
check(last["units_done"] == last["units_total"] == int(f.attrs["units"]), "progress units differ")
check(all(a["bytes_written"] <= b["bytes_written"] for a, b in zip(lines, lines[1:])), "progress goes backwards")

for m in fails[:20]:
    print("FAIL:", m)
print(f"report: {n} rows, {checked} Q8_0 errors and {n_delta} delta ratios checked against numpy, "
      f"{len(lines)} progress lines")
sys.exit(1 if fails else 0)
