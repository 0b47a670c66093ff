#!/usr/bin/python3
"""Independent numpy forward pass of a Hugging Face decoder-only checkpoint (the conformance oracle for GGUF).

Reads config.json and the safetensors weights with json + numpy only (no torch/transformers), computes the logits
of a token sequence in float64 (or float32) following transformers' modeling code, and prints them as JSON:

    /usr/bin/python3 tests/reference/forward.py MODEL_DIR --tokens 1,2,3 [--all] [--out logits.json]
        [--lora ADAPTER_DIR [--lora-scale 1.0] [--lora-round none|bf16|f16]] [--dtype f64|f32]

Output: {"model": dir, "tokens": [...], "n_vocab": V, "positions": [p...], "logits": [[...V], ...],
"logprobs": [[...V], ...]} with one row per listed position (the last one unless --all).

Families (config model_type): llama, mistral (same math), qwen2 (q/k/v bias), qwen3 (per-head q_norm/k_norm
before rotary), gemma (RMSNorm weight used as 1 + w, embeddings scaled by sqrt(hidden), gelu-tanh MLP), phi3
(fused qkv_proj and gate_up_proj, partial rotary). Rope scaling: none, "linear", "llama3".
With --lora, a PEFT LoRA adapter is merged first: W += scale * (alpha / r) * B @ A (alpha / sqrt(r) with
use_rslora), per-module rank_pattern/alpha_pattern honoured by suffix match.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- safetensors (by hand)
_ST_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("u1"),
}


def read_safetensors(path):
    """Returns {name: float64 ndarray} for every tensor of one .safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _ST_DTYPES:
            raise SystemExit(f"{path}: tensor '{name}': unsupported dtype {dt}")
        b, e = info["data_offsets"]
        raw = np.frombuffer(data[b:e], dtype=_ST_DTYPES[dt])
        if dt == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32)  # bf16 is the top half of an f32
        else:
            arr = raw
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def read_weights(model_dir):
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        index = json.load(f)
    w = {}
    for shard in sorted(set(index["weight_map"].values())):
        w.update(read_safetensors(os.path.join(model_dir, shard)))
    return w


# ---------------------------------------------------------------- LoRA
def round_to(x, kind):
    """Rounds float64 values to bf16 / f16 (nearest, ties to even) and back, as a merged checkpoint stores them."""
    if kind == "bf16":
        u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
        u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
        return u.astype(np.uint32).view(np.float32).astype(np.float64)
    if kind == "f16":
        return x.astype(np.float16).astype(np.float64)
    return x


def merge_lora(weights, adapter_dir, scale, round_kind="none"):
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        cfg = json.load(f)
    if cfg.get("peft_type", "LORA") != "LORA" or cfg.get("use_dora"):
        raise SystemExit(f"{adapter_dir}: only plain LoRA is supported here")
    path = os.path.join(adapter_dir, "adapter_model.safetensors")
    ad = read_safetensors(path)
    r0, alpha0 = cfg["r"], cfg["lora_alpha"]
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}

    def pattern(pat, module, default):
        for k, v in pat.items():
            if module == k or module.endswith("." + k):
                return v
        return default

    n = 0
    for key in sorted(ad):
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")]
        a, b = ad[key], ad[module + ".lora_B.weight"]
        target = module[len("base_model.model."):] if module.startswith("base_model.model.") else module
        r = pattern(rank_pattern, target, r0)
        alpha = pattern(alpha_pattern, target, alpha0)
        s = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        wname = target + ".weight"
        if wname not in weights:
            raise SystemExit(f"{path}: tensor '{key}': base has no {wname}")
        weights[wname] = round_to(weights[wname] + scale * s * (b @ a), round_kind)
        n += 1
    if n == 0:
        raise SystemExit(f"{path}: no lora_A tensors")


# ---------------------------------------------------------------- model
class Config:
    def __init__(self, c):
        self.raw = c
        self.model_type = c.get("model_type", "llama")
        self.hidden = c["hidden_size"]
        self.n_layer = c["num_hidden_layers"]
        self.n_head = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_head
        self.head_dim = c.get("head_dim") or self.hidden // self.n_head
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.rope_scaling = c.get("rope_scaling")
        self.tied = c.get("tie_word_embeddings", self.model_type == "gemma")
        self.vocab = c["vocab_size"]
        t = self.model_type
        # Family flags: everything below reads these, never model_type.
        self.norm_plus_one = t in ("gemma",)              # Gemma RMSNorm: x * (1 + w)
        self.embed_scale = math.sqrt(self.hidden) if t in ("gemma",) else 1.0
        self.qk_norm = t in ("qwen3",)                     # per-head RMSNorm on q and k before rotary
        self.fused_qkv = t in ("phi3",)
        self.fused_gate_up = t in ("phi3",)
        self.rotary_dim = int(self.head_dim * c.get("partial_rotary_factor", 1.0))
        act = c.get("hidden_activation") or c.get("hidden_act", "silu")
        if t == "gemma" and act in ("gelu", "gelu_pytorch_tanh"):
            act = "gelu_pytorch_tanh"  # transformers forces the tanh approximation for Gemma
        self.act = act
        self.attn_scale = 1.0 / math.sqrt(c.get("query_pre_attn_scalar", self.head_dim))


def rms_norm(x, w, eps, plus_one):
    y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return y * ((1.0 + w) if plus_one else w)


def activation(name, x):
    if name == "silu":
        return x / (1.0 + np.exp(-x))
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "gelu":
        erf = np.vectorize(math.erf)
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
    raise SystemExit(f"unsupported activation {name}")


def inv_freq(cfg):
    d = cfg.rotary_dim
    f = 1.0 / (cfg.theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    rs = cfg.rope_scaling
    if not rs:
        return f
    kind = (rs.get("rope_type") or rs.get("type") or "default").lower()
    if kind == "default":
        return f
    if kind == "linear":
        return f / rs["factor"]
    if kind == "llama3":  # transformers _compute_llama3_parameters
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / f
        out = np.where(wl > lo_wl, f / factor, f)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wl < hi_wl) & ~(wl > lo_wl)
        return np.where(medium, smoothed, out)
    raise SystemExit(f"unsupported rope_scaling type {kind}")


def apply_rotary(x, cos, sin, rot):
    # x [T, H, D]; HF rotate_half on the first `rot` dims: (x1, x2) -> (-x2, x1)
    xr, xp = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    y = xr * cos[:, None, :] + rotated * sin[:, None, :]
    return np.concatenate([y, xp], axis=-1)


def forward(cfg, w, tokens, dt=np.float64):
    W = {k: v.astype(dt) for k, v in w.items()}
    T, H, KV, D = len(tokens), cfg.n_head, cfg.n_kv, cfg.head_dim
    x = W["model.embed_tokens.weight"][np.asarray(tokens)] * dt(cfg.embed_scale)
    pos = np.arange(T, dtype=np.float64)
    ang = np.outer(pos, inv_freq(cfg))
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb).astype(dt), np.sin(emb).astype(dt)
    mask = np.triu(np.full((T, T), -np.inf, dtype=dt), k=1)

    def lin(h, name):
        y = h @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        return y

    for i in range(cfg.n_layer):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
        if cfg.fused_qkv:
            qkv = lin(h, p + "self_attn.qkv_proj")
            q, k, v = np.split(qkv, [H * D, H * D + KV * D], axis=-1)
        else:
            q, k, v = lin(h, p + "self_attn.q_proj"), lin(h, p + "self_attn.k_proj"), lin(h, p + "self_attn.v_proj")
        q, k, v = q.reshape(T, H, D), k.reshape(T, KV, D), v.reshape(T, KV, D)
        if cfg.qk_norm:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg.eps, cfg.norm_plus_one)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg.eps, cfg.norm_plus_one)
        q, k = apply_rotary(q, cos, sin, cfg.rotary_dim), apply_rotary(k, cos, sin, cfg.rotary_dim)
        rep = H // KV  # GQA: query head j uses kv head j // rep (repeat_kv)
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) * dt(cfg.attn_scale) + mask
        s = s - s.max(axis=-1, keepdims=True)
        pr = np.exp(s)
        pr = pr / pr.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", pr, v).reshape(T, H * D)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
        if cfg.fused_gate_up:
            gate, up = np.split(lin(h, p + "mlp.gate_up_proj"), 2, axis=-1)
        else:
            gate, up = lin(h, p + "mlp.gate_proj"), lin(h, p + "mlp.up_proj")
        x = x + lin(activation(cfg.act, gate) * up, p + "mlp.down_proj")
    x = rms_norm(x, W["model.norm.weight"], cfg.eps, cfg.norm_plus_one)
    head = W["model.embed_tokens.weight"] if cfg.tied or "lm_head.weight" not in W else W["lm_head.weight"]
    return x @ head.T  # [T, V]


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--all", action="store_true", help="every position, not only the last")
    ap.add_argument("--out", help="write JSON here instead of stdout")
    ap.add_argument("--lora", help="PEFT LoRA adapter directory to merge first")
    ap.add_argument("--lora-scale", type=float, default=1.0)
    ap.add_argument("--lora-round", choices=["none", "bf16", "f16"], default="none",
                    help="round merged weights like a merged checkpoint of that dtype (compare with our merge output)")
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64")
    a = ap.parse_args()

    with open(os.path.join(a.model_dir, "config.json")) as f:
        cfg = Config(json.load(f))
    tokens = [int(t) for t in a.tokens.split(",") if t.strip()]
    if not tokens or min(tokens) < 0 or max(tokens) >= cfg.vocab:
        raise SystemExit(f"token ids must be in [0, {cfg.vocab})")
    w = read_weights(a.model_dir)
    if a.lora:
        merge_lora(w, a.lora, a.lora_scale, a.lora_round)
    logits = forward(cfg, w, tokens, np.float64 if a.dtype == "f64" else np.float32).astype(np.float64)
    if not np.all(np.isfinite(logits)):
        raise SystemExit("non-finite logits")
    rows = list(range(len(tokens))) if a.all else [len(tokens) - 1]
    out = {
        "model": os.path.abspath(a.model_dir),
        "tokens": tokens,
        "n_vocab": int(logits.shape[1]),
        "positions": rows,
        "logits": [logits[r].tolist() for r in rows],
        "logprobs": [log_softmax(logits[r]).tolist() for r in rows],
    }
    text = json.dumps(out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")


if __name__ == "__main__":
    main()
