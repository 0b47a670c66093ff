#!/usr/bin/python3
"""bnb-nf4 / bnb-fp4 output check (docs/formats.md): `shardforge export --format bnb-{nf4,fp4} [--double-quant]`
on the demo model + adapter and on an odd-shaped fixture (blocks crossing rows, partial blocks, an odd element
count, all-zero blocks) must be byte-identical to the independent numpy implementation of bitsandbytes' CPU rules
(bnb_ref.py) applied to the independent numpy merge (merge_ref.py); a transformers-style loader (bnb_load.py) must
read it and dequantize exactly the reference values; bnb_requant.tsv must hold the reference statistics; and a
multi-rank run must give the same bytes; exported again as a quantized base (the bnb input reader), our output
must give bf16 safetensors equal to the loader's dequantization.

    bnb_out_check.py SHARDFORGE_BIN MPIRUN [MPI flags...]
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bnb_load  # noqa: E402
import bnb_ref  # noqa: E402
import merge_ref  # noqa: E402
import st_io  # noqa: E402

BIN, MPI = sys.argv[1], sys.argv[2:]
fails = []


def check(cond, msg):
    if not cond:
        fails.append(msg)
    return cond


def run(args, np_=1):
    cmd = ([*MPI[:1], "-np", str(np_), *MPI[1:]] if np_ > 1 else []) + [BIN, *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return r


def odd_fixture(work):
    """Small demo (hidden 36: rows of 36 elements, so 64-blocks cross rows and end in partial blocks) plus an
    odd-count Linear (7x9 = 63 elements, LoRA-targeted) and an all-zero Linear (4x40: two zero full blocks and a
    zero partial block)."""
    d = os.path.join(work, "odd")
    run(["demo", d, "--layers", "1", "--hidden", "36", "--heads", "3", "--kv-heads", "1", "--intermediate", "45",
         "--vocab", "300", "--shards", "1"])
    base = os.path.join(d, "base", "model.safetensors")
    t = st_io.read(base)
    rng = np.random.default_rng(5)
    t["model.layers.0.mlp.odd_proj.weight"] = ("BF16", (rng.standard_normal((7, 9)) * 0.05).astype(np.float32))
    t["model.layers.0.mlp.zero_proj.weight"] = ("BF16", np.zeros((4, 40), np.float32))
    st_io.write(base, t, {"format": "pt"})
    ad = os.path.join(d, "adapter")
    a = st_io.read(os.path.join(ad, "adapter_model.safetensors"))
    p = "base_model.model.model.layers.0.mlp.odd_proj."
    a[p + "lora_A.weight"] = ("F32", (rng.standard_normal((8, 9)) * 0.1).astype(np.float32))
    a[p + "lora_B.weight"] = ("F32", (rng.standard_normal((7, 8)) * 0.1).astype(np.float32))
    st_io.write(os.path.join(ad, "adapter_model.safetensors"), a, {"format": "pt"})
    cfg = json.load(open(os.path.join(ad, "adapter_config.json")))
    cfg["target_modules"].append("odd_proj")
    json.dump(cfg, open(os.path.join(ad, "adapter_config.json"), "w"), indent=2)
    return d


def to_dtype(arr, dt):
    return bnb_load._round(arr, {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[dt])


def compare(tag, out_dir, merged, base, qtype, dq):
    raw = {}
    for f in glob.glob(os.path.join(out_dir, "*.safetensors")):
        raw.update(st_io.read(f))
    loaded, info = bnb_load.load(out_dir)
    tsv = {}
    tsv_path = os.path.join(out_dir, "bnb_requant.tsv")
    if check(os.path.exists(tsv_path), f"{tag}: no bnb_requant.tsv"):
        for line in open(tsv_path).read().splitlines()[1:]:
            name, n, ch, frac, err = line.split("\t")
            tsv[name] = (int(n), int(ch), float(err))
    n_q = 0
    for name, (dt, w) in merged.items():
        if name not in loaded:
            check(False, f"{tag}: {name} missing")
            continue
        if name not in info:                       # 16-bit: the merge rounded to the base dtype
            odt, got = raw[name]
            check(odt == dt and np.array_equal(got, to_dtype(w, dt)), f"{tag}: {name} 16-bit values differ")
            continue
        n_q += 1
        qs = info[name]
        check(qs["dtype"] == "bfloat16", f"{tag}: {name} dtype {qs['dtype']}")
        x = to_dtype(w, dt)
        ref = bnb_ref.quantize4(x, qtype, 64, dq)
        check(np.array_equal(raw[name][1].reshape(-1), ref["packed"]), f"{tag}: {name} packed codes differ")
        check(np.array_equal(raw[name + ".absmax"][1], ref["absmax"]) and
              raw[name + ".absmax"][1].dtype == ref["absmax"].dtype, f"{tag}: {name} absmax differs")
        check(np.array_equal(raw[name + ".quant_map"][1].view(np.uint32), ref["quant_map"].view(np.uint32)),
              f"{tag}: {name} quant_map differs")
        js = bytes(raw[name + ".quant_state.bitsandbytes__" + qtype][1])
        exp = bnb_ref.quant_state_json(qtype, 64, "bfloat16", x.shape, ref.get("nested_offset")).encode()
        if dq:
            check(np.array_equal(raw[name + ".nested_absmax"][1], ref["nested_absmax"]), f"{tag}: {name} nested_absmax")
            check(np.array_equal(raw[name + ".nested_quant_map"][1].view(np.uint32),
                                 ref["nested_quant_map"].view(np.uint32)), f"{tag}: {name} nested_quant_map")
            # the only padding: spaces after the JSON (the offset's repr length is unknown when the layout is planned)
            check(js.startswith(exp) and js[len(exp):].strip(b" ") == b"", f"{tag}: {name} quant_state {js!r} vs {exp!r}")
        else:
            check(js == exp, f"{tag}: {name} quant_state {js!r} vs {exp!r}")
        deq = bnb_load._round(bnb_ref.dequantize4(ref["packed"], ref["absmax_deq"], ref["quant_map"], x.size, 64),
                              "bfloat16").reshape(x.shape)
        check(np.array_equal(loaded[name][1].view(np.uint32), deq.view(np.uint32)), f"{tag}: {name} loader values")
        if name in base and not np.array_equal(base[name][1], w):
            b = to_dtype(base[name][1], dt)
            rb = bnb_ref.quantize4(b, qtype, 64, dq)
            changed = int(np.sum(bnb_ref.codes_of(ref["packed"], x.size) != bnb_ref.codes_of(rb["packed"], x.size)))
            dw = (w - base[name][1]).astype(np.float32).astype(np.float64).reshape(-1)
            applied = (bnb_ref.dequantize4(ref["packed"], ref["absmax_deq"], ref["quant_map"], x.size, 64) -
                       bnb_ref.dequantize4(rb["packed"], rb["absmax_deq"], rb["quant_map"], x.size, 64))
            err = np.sqrt(np.sum((applied.astype(np.float64) - dw) ** 2) / np.sum(dw ** 2))
            got = tsv.get(name)
            check(got is not None and got[0] == x.size and got[1] == changed and abs(got[2] - err) <= 1e-6 * max(1, err),
                  f"{tag}: {name} stats {got} vs ({x.size}, {changed}, {err})")
    for name in info:
        check(name in merged, f"{tag}: unexpected 4-bit tensor {name}")
    return n_q


def files_of(d):
    return {os.path.relpath(f, d): open(f, "rb").read() for f in glob.glob(os.path.join(d, "*")) if os.path.isfile(f)}


def main():
    work = tempfile.mkdtemp(prefix="sf-bnb-")
    try:
        run(["demo", os.path.join(work, "demo")])
        fixtures = {"demo": os.path.join(work, "demo"), "odd": odd_fixture(work)}
        total = 0
        for fx, d in fixtures.items():
            merged, _ = merge_ref.merge(os.path.join(d, "base"), [(os.path.join(d, "adapter"), 1.0)])
            base, _ = merge_ref.merge(os.path.join(d, "base"), [])
            for qtype in ("nf4", "fp4"):
                for dq in (False, True):
                    tag = f"{fx}/{qtype}{'+dq' if dq else ''}"
                    out = os.path.join(work, "out", tag.replace("/", "-"))
                    args = ["export", "--base", os.path.join(d, "base"), "--adapter", os.path.join(d, "adapter"),
                            "--out", out, "--format", "bnb-" + qtype] + (["--double-quant"] if dq else [])
                    if fx == "demo":
                        args += ["--max-shard-size", "1MB"]   # several shards: groups must stay together
                    r = run(args)
                    check("re-quantiz" in r.stderr + r.stdout, f"{tag}: no accuracy warning printed")
                    n = compare(tag, out, merged, base, qtype, dq)
                    check(n >= 7, f"{tag}: only {n} 4-bit tensors")
                    total += n
                    if fx == "demo" or qtype == "nf4":
                        # Round trip: our output as a quantized base -> bf16 safetensors equal to the loader's values.
                        rt = out + "-rt"
                        run(["export", "--base", out, "--out", rt, "--format", "safetensors"])
                        loaded, _ = bnb_load.load(out)
                        back = {}
                        for f in glob.glob(os.path.join(rt, "*.safetensors")):
                            back.update(st_io.read(f))
                        check(back.keys() == loaded.keys(), f"{tag}: round trip tensor set differs")
                        for k, (_, v) in loaded.items():
                            got = back.get(k)
                            check(got is not None and got[1].shape == v.shape and
                                  np.array_equal(got[1].view(np.uint32), v.view(np.uint32)) if v.dtype == np.float32
                                  else np.array_equal(got[1], v), f"{tag}: round trip {k} differs")
                    if MPI and qtype == "nf4":
                        out2 = out + "-np2"
                        run(args[:args.index("--out") + 1] + [out2] + args[args.index("--out") + 2:], np_=2)
                        a, b = files_of(out), files_of(out2)
                        check(a.keys() == b.keys(), f"{tag}: np2 file set differs")
                        for k in a:
                            check(a[k] == b.get(k), f"{tag}: np2 {k} differs from np1")
        # A weak adapter (weight 0.01): few codes change and the applied delta is mostly quantization noise —
        # the report must say so (changed fraction small, every delta error > 1), with the reference's values.
        d = fixtures["demo"]
        merged, _ = merge_ref.merge(os.path.join(d, "base"), [(os.path.join(d, "adapter"), 0.01)])
        base, _ = merge_ref.merge(os.path.join(d, "base"), [])
        out = os.path.join(work, "out", "weak")
        run(["export", "--base", os.path.join(d, "base"), "--adapter", os.path.join(d, "adapter") + ":0.01",
             "--out", out, "--format", "bnb-nf4"])
        total += compare("demo/nf4-weak", out, merged, base, "nf4", False)
        rows = [ln.split("\t") for ln in open(os.path.join(out, "bnb_requant.tsv")).read().splitlines()[1:]]
        check(len(rows) == 28 and all(float(r[3]) < 0.02 and float(r[4]) > 1.0 for r in rows),
              f"weak adapter report: {rows[:3]}")
        print(f"{total} 4-bit tensors checked, {len(fails)} failures")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in fails[:40]:
        print("FAIL", f)
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
