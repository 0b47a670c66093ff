#!/usr/bin/python3
"""A LoRA on gpt-oss's MXFP4 experts (PEFT target_parameters on transformers' dequantized mlp.experts.gate_up_proj /
down_proj) through the CLI, against references that share no code with shardforge (docs/formats.md, gpt-oss).

    mxfp4_lora_check.py --shardforge BIN --work DIR --ggml LIBGGML_BASE [--mpiexec MPIEXEC --mpiflags "..."]

The `gpt-oss-mxfp4` demo, and its adapter plus ParamWrapper factors on every layer's experts (gate_up_proj the
inner wrapper, down_proj the outer, as PEFT nests them), is exported to gguf:f32 twice:
  - from the MXFP4 base itself;
  - from a 16-bit twin: the same checkpoint with the experts dequantized by forward.py's dequant_mxfp4 into
    transformers' layout (gate_up_proj [E, hidden, 2 ff], down_proj [E, ff, hidden], F32) and no
    quantization_config; the adapter is the same file.
Checks: every tensor but the experts is byte-identical between the two GGUFs; the MXFP4 export writes the experts as
MXFP4 (the converter's type for them) and their bytes equal ggml's own quantizer (libggml-base's ggml_quantize_chunk,
dlopen'ed with ctypes) applied to the 16-bit export's merged F32 experts; those F32 experts differ from an export
without the expert factors (the LoRA moved them); the run names every re-quantized MXFP4 tensor in its
re-quantization report; with --mpiexec, 2 ranks with row blocks write the same bytes as 1 rank.
Exit 0 pass, 1 fail.
"""
import argparse
import ctypes
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "conformance", "quantize"))
import compare_gguf  # noqa: E402
import st_io  # noqa: E402
from forward import dequant_mxfp4  # noqa: E402

GGML_TYPE_F32, GGML_TYPE_MXFP4 = 0, 39
problems = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        problems.append(what)


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}")
    return p.stdout + p.stderr


def expert_adapter(demo, out, seed=7):
    """The demo adapter plus ParamWrapper factors on every layer's experts; target_parameters in the config."""
    cfg = json.load(open(os.path.join(demo, "base", "config.json")))
    E, H, F, L = cfg["num_local_experts"], cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    ad = json.load(open(os.path.join(demo, "adapter", "adapter_config.json")))
    r = ad["r"]
    t = st_io.read(os.path.join(demo, "adapter", "adapter_model.safetensors"))
    rng = np.random.default_rng(seed)
    for layer in range(L):
        m = f"base_model.model.model.layers.{layer}.mlp.experts"
        # inner wrapper: gate_up_proj (in = hidden, out = 2 ff); outer: down_proj (in = ff, out = hidden)
        t[m + ".base_layer.lora_A.weight"] = ("F32", rng.uniform(-0.3, 0.3, (r * E, H)).astype(np.float32))
        t[m + ".base_layer.lora_B.weight"] = ("F32", rng.normal(0, 0.05, (2 * F, r * E)).astype(np.float32))
        t[m + ".lora_A.weight"] = ("F32", rng.uniform(-0.3, 0.3, (r * E, F)).astype(np.float32))
        t[m + ".lora_B.weight"] = ("F32", rng.normal(0, 0.05, (H, r * E)).astype(np.float32))
    ad["target_parameters"] = ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]
    os.makedirs(out, exist_ok=True)
    st_io.write(os.path.join(out, "adapter_model.safetensors"), t, {"format": "pt"})
    json.dump(ad, open(os.path.join(out, "adapter_config.json"), "w"), indent=2)


def sixteen_bit_twin(base, out):
    """The MXFP4 checkpoint with its experts dequantized into transformers' layout (F32), no quantization_config."""
    shutil.copytree(base, out)
    cfg = json.load(open(os.path.join(out, "config.json")))
    cfg.pop("quantization_config", None)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in sorted(os.listdir(out)):
        if not f.endswith(".safetensors"):
            continue
        t = st_io.read(os.path.join(out, f))
        for k in [k for k in t if k.endswith("_blocks")]:
            stem = k[: -len("_blocks")]
            w = dequant_mxfp4(t.pop(k)[1], t.pop(stem + "_scales")[1])
            t[stem] = ("F32", np.swapaxes(w, -1, -2).astype(np.float32))
        st_io.write(os.path.join(out, f), t, {"format": "pt"})
    index = os.path.join(out, "model.safetensors.index.json")
    if os.path.exists(index):
        j = json.load(open(index))
        wm = j["weight_map"]
        for k in [k for k in wm if k.endswith("_blocks")]:
            wm[k[: -len("_blocks")]] = wm.pop(k)
            wm.pop(k[: -len("_blocks")] + "_scales", None)
        json.dump(j, open(index, "w"), indent=2)


def gguf(d):
    files = [f for f in os.listdir(d) if f.endswith(".gguf")]
    assert len(files) == 1, files
    return os.path.join(d, files[0])


def decode_mxfp4(data, count):
    """ggml's block_mxfp4 rows -> float64: per 32 values one E8M0 byte e, then 16 bytes (value j in the low nibble of
    byte j, value j + 16 in the high one), each the doubled E2M1 code times 2^(e - 128)."""
    k = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], dtype=np.float64)
    b = np.frombuffer(data[: count // 32 * 17], dtype=np.uint8).reshape(-1, 17)
    q = b[:, 1:]
    vals = np.concatenate([k[q & 15], k[q >> 4]], axis=1) * np.exp2(b[:, :1].astype(np.float64) - 128.0)
    return vals.reshape(-1)


def ggml_quantize_mxfp4(lib, values, n_per_row):
    nrows = values.size // n_per_row
    dst = ctypes.create_string_buffer(nrows * (n_per_row // 32) * 17)
    src = np.ascontiguousarray(values, dtype=np.float32)
    n = lib.ggml_quantize_chunk(GGML_TYPE_MXFP4, src.ctypes.data_as(ctypes.c_void_p), dst, 0, nrows, n_per_row, None)
    assert n == len(dst.raw), (n, len(dst.raw))
    return dst.raw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shardforge", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--ggml", required=True)
    ap.add_argument("--mpiexec")
    ap.add_argument("--mpiflags", default="")
    a = ap.parse_args()
    sf, w = a.shardforge, a.work
    shutil.rmtree(w, ignore_errors=True)
    os.makedirs(w)
    lib = ctypes.CDLL(a.ggml)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    run([sf, "demo", f"{w}/demo", "--arch", "gpt-oss-mxfp4"])
    expert_adapter(f"{w}/demo", f"{w}/adapter")
    sixteen_bit_twin(f"{w}/demo/base", f"{w}/base16")
    log = run([sf, "export", "--base", f"{w}/demo/base", "--adapter", f"{w}/adapter", "--format", "gguf:f32",
               "--out", f"{w}/mx"])
    run([sf, "export", "--base", f"{w}/base16", "--adapter", f"{w}/adapter", "--format", "gguf:f32", "--out", f"{w}/b16"])
    run([sf, "export", "--base", f"{w}/base16", "--adapter", f"{w}/demo/adapter", "--format", "gguf:f32",
         "--out", f"{w}/b16_attn"])
    mx, b16, attn = (compare_gguf.parse(gguf(f"{w}/{d}")) for d in ("mx", "b16", "b16_attn"))
    by = lambda g: {t["name"]: t for t in g["tensors"]}  # noqa: E731
    tm, tb, ta = by(mx), by(b16), by(attn)
    check(sorted(tm) == sorted(tb), f"both exports hold the same {len(tm)} tensors")
    experts = [n for n in tm if n.endswith("_exps.weight")]
    check(len(experts) == 3 * len([n for n in tm if n.endswith("ffn_down_exps.weight")]) > 0,
          f"{len(experts)} expert weight tensors (gate, up, down per layer)")
    same = [n for n in tm if n not in experts and tm[n]["data"] == tb[n]["data"] and tm[n]["type"] == tb[n]["type"]]
    check(len(same) == len(tm) - len(experts), f"every other tensor is byte-identical ({len(same)} of {len(tm) - len(experts)})")
    for n in sorted(experts):
        ne = tm[n]["ne"]
        check(tm[n]["type"] == GGML_TYPE_MXFP4 and tb[n]["type"] == GGML_TYPE_F32 and tm[n]["ne"] == tb[n]["ne"],
              f"{n}: MXFP4 from the MXFP4 base, F32 from the 16-bit twin, ne {ne}")
        count = int(np.prod(ne))
        f32 = np.frombuffer(tb[n]["data"][: 4 * count], dtype="<f4")
        unmerged = np.frombuffer(ta[n]["data"][: 4 * count], dtype="<f4")
        check(not np.array_equal(f32, unmerged), f"{n}: the expert factors moved the merged values")
        want = ggml_quantize_mxfp4(lib, f32, ne[0])
        check(tm[n]["data"][: len(want)] == want,
              f"{n}: MXFP4 bytes equal ggml_quantize_chunk of the 16-bit merge ({len(want)} B)")
    tsv = {}
    tsv_path = f"{w}/mx/mxfp4_requant.tsv"
    if os.path.exists(tsv_path):
        for line in open(tsv_path).read().splitlines()[1:]:
            f = line.split("\t")
            tsv[f[0]] = (int(f[1]), int(f[2]), float(f[4]))
    check("MXFP4 re-quantization" in log and sorted(tsv) == sorted(experts),
          f"the run reports MXFP4 re-quantization and mxfp4_requant.tsv has one row per expert tensor ({len(tsv)})")
    for n in sorted(experts):
        # Independent statistics: W the unmerged experts (the export without expert factors), dW = merged - W, the
        # written values decoded from our MXFP4 bytes (ggml's block_mxfp4: E8M0 byte, 16 bytes of nibbles).
        count = int(np.prod(tm[n]["ne"]))
        W = np.frombuffer(ta[n]["data"][: 4 * count], dtype="<f4").astype(np.float64)
        dW = np.frombuffer(tb[n]["data"][: 4 * count], dtype="<f4").astype(np.float64) - W
        written = decode_mxfp4(tm[n]["data"], count)
        changed = int(np.count_nonzero(written != W))
        rel = float(np.sqrt(np.sum((written - W - dW) ** 2) / np.sum(dW ** 2)))
        got = tsv.get(n, (0, -1, -1.0))
        check(got[0] == count and got[1] == changed and abs(got[2] - rel) <= 1e-6 * max(rel, 1e-30) and 0 < rel < 1,
              f"{n}: report {got} = {count} values, {changed} changed, delta relative error {rel:.6g}")
    if a.mpiexec:
        # --block-size 64KB: one expert per row block (an expert's gate or up half is 384 KB in f32)
        args = [sf, "export", "--base", f"{w}/demo/base", "--adapter", f"{w}/adapter", "--format",
                "gguf:f32,gguf:q4_k_m", "--block-size", "64KB", "--out", f"{w}/mx2"]
        dry = run(args + ["--dry-run", "--dry-run-ranks", "2"])
        split = re.search(r"work units: (\d+) \((\d+) tensor\(s\) split into row blocks\)", dry)
        check(split is not None and int(split.group(2)) >= len(experts),
              f"the merged MXFP4 experts are split into row blocks ({split.group(0) if split else dry[-300:]})")
        run(shlex.split(a.mpiexec) + ["-np", "2"] + shlex.split(a.mpiflags) + args)
        run([sf, "export", "--base", f"{w}/demo/base", "--adapter", f"{w}/adapter", "--format", "gguf:f32,gguf:q4_k_m",
             "--out", f"{w}/mx1"])
        for f in sorted(os.listdir(f"{w}/mx1")):
            if f.endswith(".gguf"):
                h = [hashlib.sha256(open(f"{w}/{d}/{f}", "rb").read()).hexdigest() for d in ("mx1", "mx2")]
                check(h[0] == h[1], f"{f}: 2 ranks with row blocks write the bytes of 1 rank")
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
