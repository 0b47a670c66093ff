#!/usr/bin/python3
"""End-to-end merge check through the CLI (label reference): for every fixture case of make_fixtures.py and every
output dtype, `shardforge export --format safetensors` must produce exactly the tensors the independent numpy
reference merge_ref.py computes (bit-identical: f32 has no rounding, bf16/f16 one RNE rounding), plus the expected
config.json edits; every fixture in errors.json must be refused with its error kind's exit code and message.

    cli_merge_check.py SHARDFORGE_BIN [LAUNCHER...]      (LAUNCHER e.g. mpirun -np 3 --oversubscribe)
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_io  # noqa: E402

BIN, LAUNCH = sys.argv[1], sys.argv[2:]
EXIT = {"Usage": 2, "BadInput": 3, "Unsupported": 4}


def raw_bits(dt, arr):
    if dt == "BF16":
        return st_io.f32_to_bf16_bits(arr).view(np.uint16)  # arrays read back are exact widenings
    return np.ascontiguousarray(arr).view(np.uint8)


def load_dir(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(st_io.read(f))
    return out


def main():
    work = tempfile.mkdtemp(prefix="sf-merge-")
    subprocess.run(["/usr/bin/python3", os.path.join(HERE, "make_fixtures.py"), work], check=True,
                   stdout=subprocess.DEVNULL)
    cases = json.load(open(os.path.join(work, "cases.json")))
    errors = json.load(open(os.path.join(work, "errors.json")))
    fails, n = [], 0
    for case in cases:
        for dtype in ("f32", "bf16", "f16"):
            n += 1
            tag = f"{case['name']}/{dtype}"
            out = os.path.join(work, "out", case["name"] + "-" + dtype)
            exp = os.path.join(work, "exp", case["name"] + "-" + dtype + ".safetensors")
            os.makedirs(os.path.dirname(exp), exist_ok=True)
            adapters = []
            for a, w in case["adapters"]:
                adapters += ["--adapter", f"{os.path.join(work, a)}:{w}"]
            ref = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "merge_ref.py"), "--base",
                                  os.path.join(work, case["base"]), *adapters, "--dtype", dtype, "--out", exp],
                                 capture_output=True, text=True)
            if ref.returncode != 0:
                fails.append(f"{tag}: reference failed: {ref.stderr.strip()[-300:]}")
                continue
            r = subprocess.run(LAUNCH + [BIN, "export", "--base", os.path.join(work, case["base"]), *adapters,
                                         "--out", out, "--format", "safetensors", "--dtype", dtype,
                                         "--max-shard-size", "20KB"], capture_output=True, text=True)
            if r.returncode != 0:
                fails.append(f"{tag}: shardforge exit {r.returncode}: {r.stderr.strip()[-300:]}")
                continue
            got, want = load_dir(out), st_io.read(exp)
            if sorted(got) != sorted(want):
                fails.append(f"{tag}: tensor names differ: only ours {sorted(set(got) - set(want))[:5]}, "
                             f"only reference {sorted(set(want) - set(got))[:5]}")
                continue
            bad = []
            for name in sorted(want):
                (dg, ag), (dw, aw) = got[name], want[name]
                if dg != dw or ag.shape != aw.shape:
                    bad.append(f"{name}: {dg}{list(ag.shape)} vs {dw}{list(aw.shape)}")
                elif not np.array_equal(raw_bits(dg, ag), raw_bits(dw, aw)):
                    d = np.flatnonzero(raw_bits(dg, ag).ravel() != raw_bits(dw, aw).ravel())
                    bad.append(f"{name}: {d.size} elements differ, first at {d[0]}: "
                               f"{ag.ravel()[d[0]]!r} vs {aw.ravel()[d[0]]!r}")
            if bad:
                fails.append(f"{tag}: " + "; ".join(bad[:10]))
                continue
            cfg = json.load(open(os.path.join(out, "config.json")))
            tie = cfg.get("tie_word_embeddings", cfg.get("text_config", {}).get("tie_word_embeddings"))
            if case["untie"] and tie is not False:
                fails.append(f"{tag}: config.json keeps tie_word_embeddings={tie!r} after untying")
            if "quantization_config" in cfg:
                fails.append(f"{tag}: quantization_config kept in config.json")
            want_dtype = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}[dtype]
            if cfg.get("torch_dtype") != want_dtype:
                fails.append(f"{tag}: torch_dtype {cfg.get('torch_dtype')!r}, expected {want_dtype}")
            if len(glob.glob(os.path.join(out, "model-*-of-*.safetensors"))) > 1:
                idx = json.load(open(os.path.join(out, "model.safetensors.index.json")))
                esize = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "I8": 1}
                size = sum(esize[d] * a.size for d, a in got.values())
                if idx["metadata"]["total_size"] != size:
                    fails.append(f"{tag}: index total_size {idx['metadata']['total_size']} != {size}")
    for e in errors:
        n += 1
        adapters = []
        for a, w in e["adapters"]:
            adapters += ["--adapter", f"{os.path.join(work, a)}:{w}"]
        out = os.path.join(work, "err-out", e["name"])
        r = subprocess.run(LAUNCH + [BIN, "export", "--base", os.path.join(work, e["base"]), *adapters, "--out",
                                     out, "--format", "safetensors"], capture_output=True, text=True)
        line = [l for l in r.stderr.splitlines() if l.startswith("shardforge: error:")]
        problem = []
        if r.returncode != EXIT.get(e["kind"], -1):
            problem.append(f"exit {r.returncode}, expected {EXIT.get(e['kind'])} ({e['kind']})")
        if len(line) != 1:
            problem.append(f"{len(line)} error lines: {r.stderr.strip()[-300:]}")
        for c in e["contains"]:
            if not any(c in l for l in line):
                problem.append(f"message lacks {c!r}")
        if os.path.isdir(out) and any(os.scandir(out)):
            problem.append("output files left")
        if problem:
            fails.append(f"error case {e['name']}: " + "; ".join(problem))
    for f in fails:
        print("FAIL", f)
    print(f"cli merge check: {n - len(fails)} passed, {len(fails)} failed")
    sys.exit(1 if fails else 0)


main()
