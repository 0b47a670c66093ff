#!/usr/bin/python3
"""Independent numpy reference for merging PEFT LoRA adapters into a Hugging Face model, written from
PEFT's tuners/lora/layer.py (not from the C++ code).

    merge_ref.py --base DIR --adapter DIR[:weight] [--adapter ...] --dtype f32|bf16|f16|base --out expected.safetensors
                 [--meta expected.json]

Semantics (docs/engine.md "Determinism"): every adapter tensor is widened to f32, delta = B @ A in
f32 in the documented order (docs/engine.md, "Determinism": per element, k ascending, a rounded multiply then a
rounded add, no FMA; computed below with whole-array float32 operations, never numpy's matmul/BLAS, so the bits do
not depend on which BLAS numpy links or its threads), transposed where needed, times
scale = float32(scaling * adapter_weight), one f32 add; DoRA norms are sums of squares in float64 in index order;
full tensors replace the base before that adapter's deltas; adapters are applied in command-line order; the result
is rounded once (RNE) to the output dtype. Writes every tensor of the model (unchanged ones converted too) and,
with --meta, {"untie": bool, "changed": [names]}.
"""
import argparse
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

PREFIX = "base_model.model."
HEAD = "lm_head.weight"
SUFFIXES = [(".lora_A.weight", "A"), (".lora_B.weight", "B"), (".lora_B.bias", "bias"),
            (".lora_embedding_A", "eA"), (".lora_embedding_B", "eB"), (".lora_magnitude_vector", "m"),
            (".lora_magnitude_vector.weight", "m")]


def load_base(d):
    if os.path.exists(os.path.join(d, "model.safetensors")):
        files = [os.path.join(d, "model.safetensors")]
    else:
        with open(os.path.join(d, "model.safetensors.index.json")) as f:
            files = sorted({os.path.join(d, v) for v in json.load(f)["weight_map"].values()})
    t = {}
    for p in files:
        t.update(st_io.read(p))
    cfg = {}
    if os.path.exists(os.path.join(d, "config.json")):
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
    return t, cfg


def pattern_value(patterns, name, default):
    for k, v in patterns.items():          # dicts keep JSON order
        if re.match(rf"(.*\.)?({k})$", name):
            return v
    return default


def scaling(cfg, name):
    r = pattern_value(cfg.get("rank_pattern") or {}, name, cfg.get("r", 8))
    alpha = pattern_value(cfg.get("alpha_pattern") or {}, name, cfg.get("lora_alpha", 8))
    return r, (alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r)


def strip_base_layer(k):
    return re.sub(r"\.base_layer(?=\.|$)", "", k)


def mm(b, a):
    """B (m x r) @ A (r x n) in float32: acc = acc + B[:, k] * A[k, :] for k ascending (no BLAS, no FMA)."""
    b = np.ascontiguousarray(b, dtype=np.float32)
    a = np.ascontiguousarray(a, dtype=np.float32)
    acc = np.zeros((b.shape[0], a.shape[1]), dtype=np.float32)
    for k in range(b.shape[1]):
        acc = acc + b[:, k:k + 1] * a[k:k + 1, :]
    return acc


def dora(v, m, per_col):
    """v: W + dW (f32). norm per output feature, sum of squares in float64 sequentially (cumsum)."""
    x = v.T if per_col else v
    norm = np.sqrt(np.cumsum(x.astype(np.float64) ** 2, axis=1)[:, -1]).astype(np.float32)
    assert np.all(norm != 0), "zero DoRA norm"
    f = (m.reshape(-1).astype(np.float32) / norm).astype(np.float32)
    return (f[None, :] * v) if per_col else (f[:, None] * v)


def merge(base_dir, adapters):
    base, bcfg = load_base(base_dir)
    W = {k: (dt, a.astype(np.float32) if dt in ("F32", "F16", "BF16") else a) for k, (dt, a) in base.items()}
    tie = bcfg.get("tie_word_embeddings", (bcfg.get("text_config") or {}).get("tie_word_embeddings", True))
    embed = next((k for k in W if k.endswith("embed_tokens.weight")), None)
    if embed is None and "transformer.wte.weight" in W:
        embed = "transformer.wte.weight"
    tied = HEAD not in W and embed is not None and tie

    loaded = []
    for d, w in adapters:
        with open(os.path.join(d, "adapter_config.json")) as f:
            cfg = json.load(f)
        t = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v[1] for k, v in
             st_io.read(os.path.join(d, "adapter_model.safetensors")).items()}
        loaded.append((cfg, t, w))

    def touches_head(k):
        return k == "lm_head" or k.startswith("lm_head.")

    untie = False
    if tied:
        for cfg, t, _ in loaded:
            ewt = cfg.get("ensure_weight_tying", False)
            for k in t:
                if touches_head(k) and not ewt:
                    untie = True
                if k.startswith(embed.rsplit(".", 1)[0]) and not ewt:
                    untie = True
        if untie:
            W[HEAD] = (W[embed][0], W[embed][1].copy())
    elif tie and HEAD in W:
        untie = any(touches_head(k) or k.startswith(embed.rsplit(".", 1)[0]) for cfg, t, _ in loaded for k in t
                    if not cfg.get("ensure_weight_tying", False))

    def target(name):
        if name == HEAD and tied and not untie:
            return embed
        return name

    for cfg, t, w in loaded:
        groups, fulls = {}, []
        for k in t:
            for suf, slot in SUFFIXES:
                if k.endswith(suf):
                    groups.setdefault(k[:-len(suf)], {})[slot] = t[k]
                    break
            else:
                fulls.append(k)
        for k in fulls:                                   # replacements first
            tn = target(strip_base_layer(k))
            assert W[tn][1].shape == t[k].shape, k
            W[tn] = (W[tn][0], t[k].astype(np.float32).copy())
        has_embed_lora = any("eA" in g for g in groups.values())
        for mod, g in groups.items():
            depth_mod = mod
            while depth_mod.endswith(".base_layer"):
                depth_mod = depth_mod[:-len(".base_layer")]
            if tied and not untie and cfg.get("ensure_weight_tying") and touches_head(mod) and has_embed_lora:
                continue                                  # same delta as the embedding: apply once
            if "eA" in g:
                tn = target(depth_mod + ".weight")
                r, s = scaling(cfg, depth_mod)
                assert g["eA"].shape[0] == r
                sc = np.float32(s * w)
                d = mm(g["eB"], g["eA"]).T * sc          # (vocab, dim)
                v = W[tn][1] + d
                if "m" in g:
                    v = dora(v, g["m"], per_col=True)
                W[tn] = (W[tn][0], v.astype(np.float32))
                continue
            A, B = g["A"], g["B"]
            params = []
            for tp in cfg.get("target_parameters") or []:
                for name in W:
                    if name.startswith(depth_mod + ".") and "." not in name[len(depth_mod) + 1:] and \
                            (name == tp or name.endswith("." + tp)):
                        params.append(name)
            if params:
                n_out, n_in = B.shape[0], A.shape[1]
                fit = [p for p in params if W[p][1].ndim == 3 and W[p][1].shape[1:] in ((n_out, n_in), (n_in, n_out))
                       or W[p][1].shape == (n_out, n_in)]
                assert len(fit) == 1, (mod, fit)
                tn = fit[0]
                r, s = scaling(cfg, tn)
                sc = np.float32(s * w)
                P = W[tn][1].copy()
                if P.ndim == 2:
                    P = P + mm(B, A) * sc
                else:
                    E = P.shape[0]
                    assert A.shape[0] == r * E
                    Ar = A.reshape(E, r, n_in)            # rows e*r + k
                    Br = B.reshape(n_out, r, E)           # columns k*E + e
                    # PEFT's ParamWrapper: (E, in, out) unless only (E, out, in) fits (square experts: (E, in, out))
                    transposed = P.shape[1:] != (n_out, n_in) or n_out == n_in
                    for e in range(E):
                        d = mm(Br[:, :, e], Ar[e])        # (out, in)
                        P[e] = P[e] + ((d.T if transposed else d) * sc)
                W[tn] = (W[tn][0], P.astype(np.float32))
                continue
            tn = target(depth_mod + ".weight")
            r, s = scaling(cfg, depth_mod)
            assert A.shape[0] == r, (mod, A.shape, r)
            sc = np.float32(s * w)
            base_w = W[tn][1]
            n_out, n_in = B.shape[0], int(np.prod(A.shape[1:]))
            fifo = cfg.get("fan_in_fan_out", False)
            if base_w.shape == (n_in, n_out) and base_w.shape != (n_out, n_in):
                fifo = True
            if base_w.shape == (n_out, n_in) and base_w.shape != (n_in, n_out):
                fifo = False
            d = mm(B.reshape(n_out, -1), A.reshape(A.shape[0], -1))
            if fifo:
                d = d.T
            v = base_w.reshape(d.shape) + d * sc
            if "m" in g:
                v = dora(v, g["m"], per_col=fifo)
            W[tn] = (W[tn][0], v.reshape(base_w.shape).astype(np.float32))
            if "bias" in g:
                bn = depth_mod + ".bias"
                W[bn] = (W[bn][0], (W[bn][1] + g["bias"] * sc).astype(np.float32))
    for k, (dt, a) in W.items():
        if a.dtype == np.float32 and not np.all(np.isfinite(a)):
            raise SystemExit(f"non-finite merged values in {k}")
    changed = sorted(k for k in W if k not in base or not np.array_equal(
        W[k][1].view(np.uint32) if W[k][1].dtype == np.float32 else W[k][1],
        base[k][1].view(np.uint32) if base[k][1].dtype == np.float32 else base[k][1]))
    return W, {"untie": bool(untie), "changed": changed}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--adapter", action="append", default=[], help="DIR[:weight]")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16", "base"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--meta")
    a = ap.parse_args()
    adapters = []
    for s in a.adapter:
        d, w = s, 1.0
        if ":" in s:
            head, tail = s.rsplit(":", 1)
            try:
                w = float(tail)
                d = head
            except ValueError:
                pass
        adapters.append((d, w))
    W, meta = merge(a.base, adapters)
    out = {}
    for k, (dt, arr) in W.items():
        if arr.dtype != np.float32:
            out[k] = (dt, arr)
            continue
        odt = {"f32": "F32", "bf16": "BF16", "f16": "F16", "base": dt}[a.dtype]
        out[k] = (odt, arr)                                # st_io rounds RNE (f16 via astype, bf16 by integers)
    st_io.write(a.out, out, {"format": "pt"})
    if a.meta:
        with open(a.meta, "w") as f:
            json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
