#!/usr/bin/python3
"""Quantized bases (docs/formats.md; bitsandbytes NF4/FP4/int8, FP8 block / per-channel) through the CLI against
the independent numpy reference quant_ref.py (+ merge_ref.py, forward.py).

    quant_check.py safetensors --shardforge BIN --work DIR
        Every layout (with odd-count / row-crossing extra tensors): `export --dtype f32` without an adapter is
        bit-identical to quant_ref.py's dequantization; with the demo adapter `--dtype bf16` is bit-identical to
        merge_ref.py applied to the dequantized model; the default dtype of 4-bit tensors is the quant_state dtype;
        no auxiliary tensor reaches the output; config.json loses quantization_config. --merge-into original
        (--original-base = the bf16 model) is bit-identical to merge_ref.py on the original.
    quant_check.py gguf --shardforge BIN --work DIR
        nf4dq / int8 / fp8block (partial edge blocks) + adapter -> gguf:f32, gguf:q4_k_m and gguf-lora; llama.cpp
        (node-llama-cpp) loads them; F32 logits match forward.py on the dequantized-and-merged weights within 1e-5,
        Q4_K_M within a KL bound, and the F32 logits are farther from the original bf16 model's than the tolerance
        (the dequantization is really exercised).
    quant_check.py mpi --shardforge BIN --work DIR --mpiexec MPIEXEC [--mpiflags "..."]
        nf4dq: safetensors + gguf:q4_k_m at -np 1, -np 2 and -np 2 with row blocks (--max-memory-per-rank):
        identical sha256.
    quant_check.py gpu --shardforge BIN --work DIR
        With a visible GPU and a CUDA build: every layout's `export --dtype f32 --device cuda` (input dequantization
        on the GPU, default and 1 MiB --max-gpu-memory: one chunk / many chunks per tensor) is bit-identical to
        quant_ref.py's dequantization. Skipped (77) without a GPU.
Exit 0 pass, 1 fail, 77 skip (gpu mode only: only gpu-labelled tests may skip).
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import quant_ref as q  # noqa: E402

PY = "/usr/bin/python3"
LAYOUTS = ["nf4", "nf4dq", "fp4", "int8", "fp8block", "fp8chan", "fp8ctblk"]
AUX = (".absmax", ".quant_map", ".quant_state.", ".SCB", ".weight_format", ".weight_scale", ".input_scale")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(cmd, ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if ok and p.returncode != 0:
        fail(f"command failed ({p.returncode}): {shlex.join(cmd)}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return p


def demo(sf, work, args):
    d = os.path.join(work, "demo")
    shutil.rmtree(d, ignore_errors=True)
    run([sf, "demo", d, "--layers", "2", *args])
    return os.path.join(d, "base"), os.path.join(d, "adapter")


def make(layout, base, work, extras=False):
    qd, dd = os.path.join(work, "q_" + layout), os.path.join(work, "deq_" + layout)
    for d in (qd, dd):
        shutil.rmtree(d, ignore_errors=True)
    run([PY, os.path.join(HERE, "quant_ref.py"), "make", layout, base, qd] + (["--extras"] if extras else []))
    run([PY, os.path.join(HERE, "quant_ref.py"), "dequant", qd, dd])
    return qd, dd


def bits(dt, shape, blob):
    return q.as_f32(dt, shape, blob).view(np.uint32)


def compare(ours_dir, want, tag, problems, want_dtypes=None):
    got = q.read_dir_raw(ours_dir)
    if sorted(got) != sorted(want):
        problems.append(f"{tag}: names differ: only ours {sorted(set(got) - set(want))[:4]}, "
                        f"only reference {sorted(set(want) - set(got))[:4]}")
        return
    for k in sorted(want):
        if any(a in k for a in AUX):
            problems.append(f"{tag}: auxiliary tensor {k} in the output")
        (dg, sg, bg), (dw, sw, bw) = got[k], want[k]
        if want_dtypes and k in want_dtypes and dg != want_dtypes[k]:
            problems.append(f"{tag}: {k} written as {dg}, expected {want_dtypes[k]}")
        if tuple(sg) != tuple(sw):
            problems.append(f"{tag}: {k} shape {sg} vs {sw}")
            continue
        x, y = bits(dg, sg, bg), bits(dw, sw, bw)
        if not np.array_equal(x, y):
            d = np.flatnonzero(x.ravel() != y.ravel())
            problems.append(f"{tag}: {k}: {d.size} of {x.size} values differ, first at {d[0]}")
    cfg = json.load(open(os.path.join(ours_dir, "config.json")))
    if "quantization_config" in cfg:
        problems.append(f"{tag}: quantization_config kept in config.json")


def mode_safetensors(a):
    sf, work = a.shardforge, a.work
    # hidden 160 / intermediate 288: 4-bit blocks of 64 cross rows, FP8 128x128 grids have partial edge blocks.
    base, adapter = demo(sf, work, ["--hidden", "160", "--heads", "5", "--kv-heads", "1", "--intermediate", "288",
                                    "--vocab", "320", "--shards", "2"])
    problems, n = [], 0
    for layout in LAYOUTS:
        qd, dd = make(layout, base, work, extras=True)
        deq = q.read_dir_raw(dd)
        # (a) dequantization alone, f32: exact values
        out = os.path.join(work, f"out_{layout}_f32")
        shutil.rmtree(out, ignore_errors=True)
        run([sf, "export", "--base", qd, "--out", out, "--format", "safetensors", "--dtype", "f32"])
        compare(out, {k: q.f32_raw(q.as_f32(*v)) if v[0] in ("BF16", "F16", "F32") else v
                      for k, v in deq.items()}, f"{layout} f32", problems)
        # (b) default dtype: 4-bit tensors in their quant_state dtype (bf16 here), int8/FP8 in config torch_dtype
        out = os.path.join(work, f"out_{layout}_default")
        shutil.rmtree(out, ignore_errors=True)
        run([sf, "export", "--base", qd, "--out", out, "--format", "safetensors"])
        want = {k: ("BF16", v[1], q.st_io.f32_to_bf16_bits(q.as_f32(*v)).tobytes()) if v[0] == "F32" else v
                for k, v in deq.items()}
        compare(out, want, f"{layout} default dtype", problems, {k: v[0] for k, v in want.items()})
        # (c) dequantize + merge the demo adapter, bf16: merge_ref.py on the dequantized model
        exp = os.path.join(work, f"exp_{layout}.safetensors")
        run([PY, os.path.join(HERE, "merge_ref.py"), "--base", dd, "--adapter", adapter, "--dtype", "bf16",
             "--out", exp])
        out = os.path.join(work, f"out_{layout}_lora")
        shutil.rmtree(out, ignore_errors=True)
        run([sf, "export", "--base", qd, "--adapter", adapter, "--out", out, "--format", "safetensors",
             "--dtype", "bf16"])
        compare(out, q.read_raw(exp), f"{layout} + LoRA bf16", problems)
        n += 3
    # (d) --merge-into original: the quantized tensors come from the bf16 model itself.
    qd = os.path.join(work, "q_nf4dq")
    exp = os.path.join(work, "exp_original.safetensors")
    run([PY, os.path.join(HERE, "merge_ref.py"), "--base", base, "--adapter", adapter, "--dtype", "bf16",
         "--out", exp])
    want = q.read_raw(exp)
    extras = {k: v for k, v in q.read_dir_raw(os.path.join(work, "deq_nf4dq")).items() if ".extra" in k}
    out = os.path.join(work, "out_original")
    shutil.rmtree(out, ignore_errors=True)
    # the extras exist only in the quantized model: --original-base must name them -> use a model without extras
    qd2, _ = make("nf4dq", base, os.path.join(work, "noextras"))
    run([sf, "export", "--base", qd2, "--adapter", adapter, "--out", out, "--format", "safetensors",
         "--merge-into", "original", "--original-base", base])
    compare(out, want, "--merge-into original", problems)
    n += 1
    if not extras:
        problems.append("the extra odd-shaped tensors are missing from the test model")
    for p in problems:
        print("  " + p)
    if problems:
        fail(f"{len(problems)} problems")
    print(f"PASS: {n} exports bit-identical to the numpy reference ({', '.join(LAYOUTS)})")


def mode_gguf(a):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "conformance", "llama"))
    import gguf_logits as gl  # noqa: E402  (node discovery, llama_eval.mjs driver, forward.py wrapper)
    node = gl.need_node()
    sf, work = a.shardforge, a.work
    # intermediate 320 = 2.5 FP8 blocks (partial edge blocks along gate/up rows and down_proj columns)
    base, adapter = demo(sf, work, ["--hidden", "256", "--heads", "8", "--kv-heads", "2", "--intermediate", "320",
                                    "--vocab", "640", "--shards", "2"])
    seqs = gl.token_lists(base)
    models, outs = [], {}
    for layout in ("nf4dq", "int8", "fp8block"):
        qd, dd = make(layout, base, work)
        out = os.path.join(work, "gguf_" + layout)
        shutil.rmtree(out, ignore_errors=True)
        run([sf, "export", "--base", qd, "--adapter", adapter, "--out", out,
             "--format", "gguf:f32,gguf:q4_k_m,gguf-lora"])
        outs[layout] = (dd, gl.gguf_file(out, "F32"), gl.gguf_file(out, "Q4_K_M"))
        models += [outs[layout][1], outs[layout][2]]
        if not any("-lora-" in f or "lora" in f.lower() for f in os.listdir(out) if f.endswith(".gguf")):
            fail(f"{layout}: no GGUF LoRA written: {os.listdir(out)}")
    ll = gl.llama_logits(node, models, seqs)
    rows, problems = [], []
    for layout, (dd, f32, q4) in outs.items():
        for seq in seqs:
            ref = gl.reference(dd, seq, adapter)
            orig = gl.reference(base, seq, adapter)
            g32, g4 = ll[(f32, tuple(seq))], ll[(q4, tuple(seq))]
            d32 = float(np.abs(g32 - ref).max())
            d_orig = float(np.abs(ref - orig).max())
            k4 = gl.kl(ref, g4)
            ok32 = d32 <= 1e-5 and int(g32.argmax()) == int(ref.argmax())
            ok_q4 = k4 <= 0.01
            ok_eff = d_orig >= 1e-3
            rows.append(f"  {'ok  ' if ok32 and ok_q4 and ok_eff else 'FAIL'} {layout} {len(seq)} tokens: F32 "
                        f"max|dlogit| {d32:.3g} (<= 1e-5); Q4_K_M KL {k4:.3g} (<= 0.01); dequantized vs original "
                        f"{d_orig:.3g} (>= 1e-3)")
            if not (ok32 and ok_q4 and ok_eff):
                problems.append(layout)
    print("\n".join(rows))
    if problems:
        fail("llama.cpp vs forward.py: " + ", ".join(sorted(set(problems))))
    print("PASS: quantized bases -> GGUF load in llama.cpp and match the reference forward pass")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def mode_mpi(a):
    if not a.mpiexec:
        print("FAIL: no mpiexec was found by CMake (MPI is required by the build)")
        sys.exit(1)
    sf, work = a.shardforge, a.work
    base, adapter = demo(sf, work, ["--hidden", "256", "--heads", "8", "--kv-heads", "2", "--intermediate", "320",
                                    "--vocab", "640", "--shards", "2"])
    qd, _ = make("nf4dq", base, work)
    dig = {}
    for np_ in (1, 2):
        out = os.path.join(work, f"np{np_}")
        shutil.rmtree(out, ignore_errors=True)
        run([a.mpiexec, "-np", str(np_), *shlex.split(a.mpiflags or ""), sf, "export", "--base", qd, "--adapter",
             adapter, "--out", out, "--format", "safetensors,gguf:q4_k_m", "--max-shard-size", "300KB"])
        for f in sorted(os.listdir(out)):
            dig.setdefault(f, {})[np_] = sha256(os.path.join(out, f))
    # Row blocks: a memory budget that splits the quantized tensors (each block dequantizes its element range).
    args = [sf, "export", "--base", qd, "--adapter", adapter, "--format", "safetensors,gguf:q4_k_m",
            "--max-shard-size", "300KB", "--threads", "2", "--max-memory-per-rank", "52MB"]
    shutil.rmtree(os.path.join(work, "blocks"), ignore_errors=True)
    dry = run(args + ["--out", os.path.join(work, "blocks"), "--dry-run"]).stdout
    m = re.search(r"work units: \d+ \((\d+) tensor\(s\) split", dry)
    if not m or int(m.group(1)) < 8:
        fail(f"expected row blocks of the quantized tensors, dry run says: {dry[-600:]}")
    out = os.path.join(work, "blocks")
    shutil.rmtree(out, ignore_errors=True)
    run([a.mpiexec, "-np", "2", *shlex.split(a.mpiflags or "")] + args + ["--out", out])
    for f in sorted(os.listdir(out)):
        dig.setdefault(f, {})["blocks"] = sha256(os.path.join(out, f))
    bad = [f for f, v in dig.items() if not (v.get(1) == v.get(2) == v.get("blocks"))]
    if bad or len(dig) < 4:
        fail(f"outputs differ between -np 1, -np 2 and row blocks: {bad} (files {sorted(dig)})")
    print(f"PASS: {len(dig)} files identical at -np 1, -np 2 and with {m.group(1)} tensors split into row blocks "
          f"(nf4 double-quant base + LoRA)")


def mode_gpu(a):
    smi = shutil.which("nvidia-smi")
    listed = subprocess.run([smi, "-L"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout if smi else ""
    if "GPU" not in listed:
        print("SKIP: no visible GPU (nvidia-smi -L lists none): input dequantization on the GPU not checked here")
        sys.exit(77)
    sf, work = a.shardforge, a.work
    if "GPU backend: CUDA" not in run([sf, "--version"]).stdout:
        print("SKIP: this shardforge was built without CUDA")
        sys.exit(77)
    base, _ = demo(sf, work, ["--hidden", "160", "--heads", "5", "--kv-heads", "1", "--intermediate", "288",
                              "--vocab", "320", "--shards", "2"])
    problems, n = [], 0
    for layout in LAYOUTS:
        qd, dd = make(layout, base, work, extras=True)
        want = {k: q.f32_raw(q.as_f32(*v)) if v[0] in ("BF16", "F16", "F32") else v
                for k, v in q.read_dir_raw(dd).items()}
        for budget in ([], ["--max-gpu-memory", "1M"]):
            out = os.path.join(work, f"gpu_{layout}_{len(budget)}")
            shutil.rmtree(out, ignore_errors=True)
            run([sf, "export", "--base", qd, "--out", out, "--format", "safetensors", "--dtype", "f32",
                 "--device", "cuda", *budget])
            compare(out, want, f"{layout} f32 --device cuda {' '.join(budget)}", problems)
            n += 1
    for p in problems:
        print("  " + p)
    if problems:
        fail(f"{len(problems)} problems")
    print(f"PASS: {n} GPU exports bit-identical to the numpy reference ({', '.join(LAYOUTS)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["safetensors", "gguf", "mpi", "gpu"])
    ap.add_argument("--shardforge", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--mpiexec", default="")
    ap.add_argument("--mpiflags", default="")
    a = ap.parse_args()
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    {"safetensors": mode_safetensors, "gguf": mode_gguf, "mpi": mode_mpi, "gpu": mode_gpu}[a.mode](a)
    print(f"({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
