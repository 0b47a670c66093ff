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
(fused qkv_proj and gate_up_proj, partial rotary), ministral3 (yarn rope_parameters, Llama 4 query scaling), glm4_moe (below). Rope
scaling: none, "linear", "llama3", "yarn".
gemma2 (pre/post feed-forward norms, attention and final logit softcapping, sliding window on even layers,
query_pre_attn_scalar), gemma3 / gemma3_text (gemma2's norms + q/k norms, sliding-window pattern, local rope base
rope_local_base_freq on sliding layers). Mixture of experts: mixtral (block_sparse_moe, softmax top-k
renormalized), qwen2_moe (top-k of the softmax, renormalized only with norm_topk_prob, plus a shared expert scaled
by sigmoid(shared_expert_gate)), qwen3_moe (norm_topk_prob, q/k norms).
qwen3_5_text (transformers' modeling_qwen3_5): layer_types mixes full attention (q_proj gives query and an output
gate per head, attention * sigmoid(gate); q/k norms; partial rotary from rope_parameters, the multimodal sections
collapse to plain rope for text positions) with gated delta-net linear attention (causal depthwise conv1d + silu on
in_proj_qkv, l2-normed q/k repeated to the V heads, decay g = -exp(A_log) * softplus(a + dt_bias), beta =
sigmoid(b), the recurrent delta rule, a gated RMSNorm with silu(z), out_proj); RMSNorms as 1 + w except the gated
one; the MTP block (mtp.*) is not part of the forward. qwen3_5_moe_text: the same with qwen2_moe's sparse block in
every layer, experts fused as gate_up_proj [E, 2I, H] / down_proj [E, H, I], top-k always renormalized.
glm4_moe (transformers' modeling_glm4_moe, GLM-4.5): q/k/v biases, per-head q/k norms when use_qk_norm, rotary on
the first head_dim * partial_rotary_factor (default 0.5) dims; the first first_k_dense_replace layers dense, the
others a sigmoid router: experts chosen by sigmoid(logits) + e_score_correction_bias (within the topk_group best of
n_group groups, a group scored by its two best), weighted by the unbiased sigmoid, renormalized with norm_topk_prob,
times routed_scaling_factor, plus the shared experts (mlp.shared_experts.*). The MTP layer model.layers.{n_layer}
is not part of the forward.
qwen3_next (transformers' modeling_qwen3_next): qwen3_5_moe_text's layers with the fused in_proj_qkvz ([q, k, v, z]
per K head, split as fix_query_key_value_ordering) and in_proj_ba ([b, a] per K head), per-expert
mlp.experts.{e}.* with norm_topk_prob, plain partial rotary (rope_theta, partial_rotary_factor at the top level),
linear layers from layer_types or else full_attention_interval.
gemma4_text / gemma4 (transformers' modeling_gemma4): RMSNorm weights used as w; sliding and full-attention layers
from layer_types with their own head size (head_dim / global_head_dim) and KV heads (num_global_key_value_heads
with attention_k_eq_v, where the raw keys are also the values), q/k norms, v normed without weight, attention scale
1; rope: default on sliding layers (their theta), "proportional" on full ones (the first partial_rotary_factor of
each half of the head rotates, frequencies over the whole head size); KV sharing (layers from num_hidden_layers -
num_kv_shared_layers on reuse the keys/values of the last earlier layer of their type); pre/post feed-forward norms
(and the MoE block beside the MLP when enable_moe_block); per-layer embeddings (embed_tokens_per_layer scaled by
sqrt(width) plus the normed per_layer_model_projection of the embeddings, times 1/sqrt(2), gated into each layer);
layer_scalar; final logit softcapping. Scales are exact (a float64 model: no bf16 rounding of sqrt(width)).
deepseek_v3 / kimi_k2 (transformers' modeling_deepseek_v3): multi-head latent attention (q_a_proj, q_a_layernorm,
q_b_proj or q_proj; kv_a_proj_with_mqa giving the latent, normed by kv_a_layernorm and expanded by kv_b_proj, plus
one rotary key shared by the heads; DeepSeek's interleaved rotary pairs; yarn softmax scale * mscale(mscale_all_dim)^2),
the first first_k_dense_replace layers dense, the others sigmoid-scored experts chosen by score +
e_score_correction_bias within the topk_group best of n_group groups (two best scores per group), weighted by the
unbiased scores (renormalized with norm_topk_prob) times routed_scaling_factor, plus the shared experts. FP8
checkpoints (F8_E4M3 weights with weight_scale_inv block scales) are dequantized on reading.
minimax_m2 (transformers' modeling_minimax_m2, MiniMax-M2): q_norm / k_norm RMSNorms over all heads at once
(before the split into heads), rotary on the first rotary_dim dims of each head, every layer a sparse block:
experts chosen by sigmoid(block_sparse_moe.gate) + e_score_correction_bias, weighted by the unbiased sigmoid scores
renormalized over the top-k, experts w1/w2/w3 as Mixtral's; FP8 weights dequantized on reading.
With --lora, a PEFT LoRA adapter is merged first: W += scale * (alpha / r) * B @ A (alpha / sqrt(r) with
use_rslora), per-module rank_pattern/alpha_pattern honoured by suffix match.
Vision-language checkpoints (Mistral3ForConditionalGeneration): the text_config is merged into the top level, the
text model's tensors are read under either layout ("language_model.model.*" / "language_model.lm_head" as stored,
"model.language_model.*" / "lm_head" as transformers >= 4.52 and PEFT name them), the vision tower and projector are
ignored.
llama4_text / llama4 (transformers' modeling_llama4, Llama4ForConditionalGeneration's text model): rotary on the
interleaved pairs (2i, 2i+1) with llama3-scaled frequencies, on the layers no_rope_layers marks (1 = rope), whose
attention is chunked (a query sees the keys of its own attention_chunk_size chunk) and whose rotated q and k get an
L2 norm without weight when use_qk_norm; the NoPE layers attend causally over everything, their queries scaled by
1 + attn_scale * log(1 + floor((pos + 1) / floor_scale)) when attn_temperature_tuning. MoE layers (every
interleave_moe_layer_step-th): the top-k router logits through a sigmoid scale each expert's input (fused experts
gate_up_proj [E, hidden, 2 * ff]: gate = first half, down_proj [E, ff, hidden]), plus the shared expert; the others
a dense MLP of intermediate_size_mlp. Attention runs in query blocks, so token lists past the 8192-token chunk fit
in memory.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from merge_ref import mm  # noqa: E402  (B @ A in the documented order: docs/engine.md, "Determinism")

# ---------------------------------------------------------------- safetensors (by hand)
_ST_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("u1"), "F8_E4M3": np.dtype("u1"),
}


def _e4m3fn_values():
    """float8 e4m3fn code -> value (1 sign, 4 exponent bits biased by 7, 3 mantissa bits; no infinities, S.1111.111
    is NaN), decoded from the bit fields."""
    v = np.zeros(256, dtype=np.float64)
    for c in range(256):
        sign = -1.0 if c & 0x80 else 1.0
        e, m = (c >> 3) & 0xF, c & 0x7
        v[c] = np.nan if (e, m) == (0xF, 0x7) else sign * (m / 8.0 * 2.0 ** -6 if e == 0 else (1 + m / 8.0) * 2.0 ** (e - 7))
    return v


_E4M3 = _e4m3fn_values()


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
        elif dt == "F8_E4M3":
            arr = _E4M3[raw]
        else:
            arr = raw
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def text_name(name):
    """The text model's tensor name in the plain decoder layout ("model.*", "lm_head.*"); None for vision parts."""
    for old, new in (("language_model.model.", "model."), ("model.language_model.", "model."),
                     ("language_model.lm_head.", "lm_head.")):
        if name.startswith(old):
            return new + name[len(old):]
    if name.startswith(("vision_tower.", "model.vision_tower.", "vision_model.", "model.vision_model.",
                        "multi_modal_projector.",
                        "model.multi_modal_projector.", "model.embed_vision.", "model.audio_tower.",
                        "model.embed_audio.")):
        return None
    return name


# OpenAI's MXFP4 (transformers' integrations/mxfp4.py, convert_moe_packed_tensors): FP4 (E2M1) codes, two a byte
# (element 2j low nibble, 2j+1 high), 32 a block, each block scaled by 2^(scale byte - 127)
FP4_VALUES = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def dequant_mxfp4(blocks, scales):
    """blocks [..., G, 16] and scales [..., G] (byte values) -> [..., G * 32] float64."""
    b = blocks.astype(np.uint8)
    codes = np.stack([b & 15, b >> 4], axis=-1).reshape(*b.shape[:-1], 32)  # [..., G, 32]
    vals = FP4_VALUES[codes] * np.exp2(scales.astype(np.float64) - 127.0)[..., None]
    return vals.reshape(*b.shape[:-2], b.shape[-2] * 32)


def read_weights(model_dir):
    w = {}
    for k, v in read_weights_raw(model_dir).items():
        n = text_name(k)
        if n is not None:
            w[n] = v
    dequant_fp8(w, model_dir)
    # gpt-oss MXFP4 experts [E, out, in] -> the model's parameters gate_up_proj [E, hidden, 2 * ff] / down_proj
    # [E, ff, hidden] (transformers dequantizes, then transposes the last two dims)
    for k in [k for k in w if k.endswith("_blocks")]:
        stem = k[: -len("_blocks")]
        w[stem] = np.swapaxes(dequant_mxfp4(w.pop(k), w.pop(stem + "_scales")), -1, -2)
    return w


def dequant_fp8(w, model_dir):
    """FP8 block-scaled checkpoints (DeepSeek-V3's quantization_config fp8): W = codes * weight_scale_inv, the scale
    grid covering weight_block_size blocks (the last ones partial); the scale tensors are removed."""
    with open(os.path.join(model_dir, "config.json")) as f:
        qc = json.load(f).get("quantization_config") or {}
    br, bc = qc.get("weight_block_size") or (128, 128)
    for name in [k for k in w if k.endswith(".weight_scale_inv")]:
        wname = name[: -len("_scale_inv")]
        s = w.pop(name)
        x = w[wname]
        w[wname] = x * np.repeat(np.repeat(s, br, axis=0), bc, axis=1)[: x.shape[0], : x.shape[1]]


def read_weights_raw(model_dir):
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
        target = text_name(target)
        if target is None:  # a vision-tower module (gemma3-vl's adapter): not part of the text forward
            continue
        r = pattern(rank_pattern, target, r0)
        alpha = pattern(alpha_pattern, target, alpha0)
        s = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
        wname = target + ".weight"
        if wname not in weights:
            raise SystemExit(f"{path}: tensor '{key}': base has no {wname}")
        weights[wname] = round_to(weights[wname] + scale * s * mm(b, a), round_kind)
        n += 1
    if n == 0:
        raise SystemExit(f"{path}: no lora_A tensors")


# ---------------------------------------------------------------- model
class Config:
    def __init__(self, c):
        if isinstance(c.get("text_config"), dict):  # vision-language configs: the text model's keys win
            c = {**c, **c["text_config"]}
        self.raw = c
        self.model_type = c.get("model_type", "llama")
        self.hidden = c["hidden_size"]
        self.n_layer = c["num_hidden_layers"]
        self.n_head = c["num_attention_heads"]
        self.n_kv = c.get("num_key_value_heads") or self.n_head
        self.head_dim = c.get("head_dim") or self.hidden // self.n_head
        self.eps = c.get("rms_norm_eps", 1e-6)
        # transformers v5 keeps theta and scaling in rope_parameters (Ministral3Config)
        rp = c.get("rope_parameters") if isinstance(c.get("rope_parameters"), dict) else {}
        self.theta = c.get("rope_theta", rp.get("rope_theta", 10000.0))
        self.rope_scaling = c.get("rope_scaling") or rp or None
        # Ministral 3 (modeling_ministral3.py): queries scaled by 1 + beta * log(1 + floor(pos / original ctx))
        self.llama4_beta = rp.get("llama_4_scaling_beta") if self.model_type == "ministral3" else None
        self.tied = c.get("tie_word_embeddings", self.model_type.startswith("gemma"))
        self.vocab = c["vocab_size"]
        t = self.model_type
        # Family flags: everything below reads these, never model_type.
        gemmas = ("gemma", "gemma2", "gemma3", "gemma3_text")
        # Qwen3.5 and Qwen3-Next: gated delta-net linear attention + gated full attention ("hybrid" below)
        self.qwen35 = t in ("qwen3_5_text", "qwen3_5", "qwen3_5_moe_text", "qwen3_5_moe", "qwen3_next")
        # gpt-oss (modeling_gpt_oss.py): attention sinks, biases, alternating sliding window, softmax over the
        # top-k router logits, clamped SwiGLU experts with interleaved gate/up
        self.gpt_oss = t == "gpt_oss"
        rp = c.get("rope_parameters") or {}
        if self.qwen35:
            self.theta = rp.get("rope_theta", c.get("rope_theta", 10000.0))
            self.rope_scaling = None
            interval = c.get("full_attention_interval", 4)  # Qwen3NextConfig's default layer_types
            types = c.get("layer_types") or ["linear_attention" if (i + 1) % interval else "full_attention"
                                             for i in range(self.n_layer)]
            self.linear = [lt == "linear_attention" for lt in types]
        self.norm_plus_one = t in gemmas or self.qwen35    # Gemma / Qwen3.5 RMSNorm: x * (1 + w)
        self.embed_scale = math.sqrt(self.hidden) if t in gemmas else 1.0
        self.glm4moe = t == "glm4_moe"
        self.qk_norm = t in ("qwen3", "qwen3_moe", "gemma3", "gemma3_text") or self.qwen35 or \
            (self.glm4moe and bool(c.get("use_qk_norm")))  # per-head RMSNorm on q, k before rotary
        self.sandwich = t in ("gemma2", "gemma3", "gemma3_text")  # post-attention / pre+post feed-forward norms
        self.attn_softcap = c.get("attn_logit_softcapping") if t == "gemma2" else None
        self.final_softcap = c.get("final_logit_softcapping") if t in gemmas else None
        # Sliding-window layers (None: full attention everywhere).
        win = c.get("sliding_window")
        if t == "gemma2":
            self.sliding = [i % 2 == 0 for i in range(self.n_layer)]
        elif self.gpt_oss:
            self.sliding = [lt == "sliding_attention" for lt in c["layer_types"]]
        elif t in ("gemma3", "gemma3_text"):
            if c.get("layer_types"):
                self.sliding = [lt == "sliding_attention" for lt in c["layer_types"]]
            else:
                pat = c.get("sliding_window_pattern", 6)
                self.sliding = [bool((i + 1) % pat) for i in range(self.n_layer)]
        elif t in ("mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe") and win and \
                c.get("use_sliding_window", t in ("mistral", "mixtral")):
            mwl = c.get("max_window_layers", self.n_layer) if t.startswith("qwen") else 0
            self.sliding = [i >= mwl for i in range(self.n_layer)]
        else:
            self.sliding = [False] * self.n_layer
        self.window = win
        self.local_theta = c.get("rope_local_base_freq") if t in ("gemma3", "gemma3_text") else None
        # MoE: kind of MLP per layer
        self.moe = t in ("mixtral", "qwen2_moe", "qwen3_moe", "qwen3_5_moe_text", "qwen3_5_moe", "glm4_moe", "qwen3_next",
                       "gpt_oss")
        self.n_expert = c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts") or 0
        self.swiglu_limit = c.get("swiglu_limit", 7.0)
        self.top_k = c.get("num_experts_per_tok", 0)
        # Mixtral and Qwen3.5-MoE's router always renormalize the top-k
        self.norm_topk = True if t in ("mixtral", "qwen3_5_moe_text", "qwen3_5_moe") else \
            bool(c.get("norm_topk_prob", t == "qwen3_next"))
        self.fused_qkv = t in ("phi3",)
        self.fused_gate_up = t in ("phi3",)
        prf = rp.get("partial_rotary_factor", c.get("partial_rotary_factor", 0.25)) if self.qwen35 else \
            c.get("partial_rotary_factor", 0.5 if self.glm4moe else 1.0)
        self.rotary_dim = int(self.head_dim * prf)
        act = c.get("hidden_activation") or c.get("hidden_act", "silu")
        if t in gemmas and act in ("gelu", "gelu_pytorch_tanh"):
            act = "gelu_pytorch_tanh"  # transformers forces the tanh approximation for Gemma
        self.act = act
        self.attn_scale = 1.0 / math.sqrt(c.get("query_pre_attn_scalar", self.head_dim))
        self.gemma4 = t in ("gemma4_text", "gemma4")
        # DeepSeek-V3 (transformers' modeling_deepseek_v3): multi-head latent attention, sigmoid group-limited
        # routing with a selection bias, shared experts, the first first_k_dense_replace layers dense
        self.deepseek = t in ("deepseek_v3", "kimi_k2")
        self.minimax = t == "minimax_m2"
        if self.minimax:
            self.rotary_dim = c["rotary_dim"]
            self.moe = True
            self.norm_topk = True
        if self.deepseek:
            self.rotary_dim = c["qk_rope_head_dim"]
            self.moe = True
            self.n_expert = c["n_routed_experts"]
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            qk = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
            rs = self.rope_scaling or {}
            m_all = rs.get("mscale_all_dim")
            scale = 1.0 / math.sqrt(qk)
            if (rs.get("rope_type") or rs.get("type")) == "yarn" and m_all and rs["factor"] > 1:
                mscale = 0.1 * m_all * math.log(rs["factor"]) + 1.0
                scale *= mscale * mscale  # softmax_scale * mscale^2 (DeepseekV3Attention)
            self.attn_scale = scale


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


def inv_freq(cfg, theta=None, scaling=True):
    d = cfg.rotary_dim
    f = 1.0 / ((theta or cfg.theta) ** (np.arange(0, d, 2, dtype=np.float64) / d))
    rs = cfg.rope_scaling if scaling else None
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
    if kind == "yarn":  # transformers _compute_yarn_parameters (truncate=True); attention factor: yarn_mscale()
        d = cfg.rotary_dim
        base, factor = theta or cfg.theta, rs["factor"]
        orig = rs.get("original_max_position_embeddings") or cfg.raw["max_position_embeddings"]
        fast, slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

        def corr_dim(rot):
            return (d * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = max(math.floor(corr_dim(fast)), 0), min(math.ceil(corr_dim(slow)), d - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(d // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extrap = 1 - ramp
        return (f / factor) * (1 - extrap) + f * extrap
    raise SystemExit(f"unsupported rope_scaling type {kind}")


def yarn_mscale(cfg):
    """The attention factor transformers multiplies cos/sin by for yarn rope (1 for other kinds)."""
    rs = cfg.rope_scaling or {}
    if (rs.get("rope_type") or rs.get("type")) != "yarn":
        return 1.0
    if rs.get("attention_factor") is not None:
        return rs["attention_factor"]

    def get_mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    m, m_all = rs.get("mscale"), rs.get("mscale_all_dim")
    if m and m_all:
        return get_mscale(rs["factor"], m) / get_mscale(rs["factor"], m_all)
    return get_mscale(rs["factor"])


def apply_rotary(x, cos, sin, rot):
    # x [T, H, D]; HF rotate_half on the first `rot` dims: (x1, x2) -> (-x2, x1)
    xr, xp = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    y = xr * cos[:, None, :] + rotated * sin[:, None, :]
    return np.concatenate([y, xp], axis=-1)


def forward_gemma4(cfg, W, tokens, dt):
    c = cfg.raw
    T, H, n, hidden, eps = len(tokens), cfg.n_head, cfg.n_layer, cfg.hidden, cfg.eps
    types = c["layer_types"]
    hd_swa = c["head_dim"]
    hd_full = c.get("global_head_dim") or hd_swa
    k_eq_v = bool(c.get("attention_k_eq_v"))
    kv_swa = c["num_key_value_heads"]
    kv_full = c["num_global_key_value_heads"] if k_eq_v else kv_swa
    first_shared = n - (c.get("num_kv_shared_layers") or 0)
    ple = c.get("hidden_size_per_layer_input") or 0
    act = "gelu_pytorch_tanh"
    rp = c["rope_parameters"]
    pos = np.arange(T, dtype=np.float64)

    def norm(x, wname=None):
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
        return y * W[wname] if wname else y

    def lin(h, name):
        return h @ W[name + ".weight"].T

    def table(freqs):
        ang = np.outer(pos, freqs)
        emb = np.concatenate([ang, ang], axis=-1)
        return np.cos(emb).astype(dt), np.sin(emb).astype(dt)

    sw = rp["sliding_attention"]
    rope = {"sliding_attention": table(1.0 / (sw["rope_theta"] ** (np.arange(0, hd_swa, 2, dtype=np.float64) / hd_swa)))}
    fa = rp["full_attention"]
    if fa.get("rope_type") == "proportional":
        angles = int(fa.get("partial_rotary_factor", 1.0) * hd_full // 2)
        f = 1.0 / (fa["rope_theta"] ** (np.arange(0, 2 * angles, 2, dtype=np.float64) / hd_full))
        f = np.concatenate([f, np.zeros(hd_full // 2 - angles)]) / fa.get("factor", 1.0)
    else:
        f = 1.0 / (fa["rope_theta"] ** (np.arange(0, hd_full, 2, dtype=np.float64) / hd_full))
    rope["full_attention"] = table(f)

    mask = np.triu(np.full((T, T), -np.inf, dtype=dt), k=1)
    far = np.subtract.outer(np.arange(T), np.arange(T)) >= c["sliding_window"]
    masks = {"full_attention": mask, "sliding_attention": mask + np.where(far, -np.inf, 0.0).astype(dt)}

    x = W["model.embed_tokens.weight"][np.asarray(tokens)] * dt(math.sqrt(hidden))
    if ple:
        tok = W["model.embed_tokens_per_layer.weight"][np.asarray(tokens)] * dt(math.sqrt(ple))
        proj = lin(x, "model.per_layer_model_projection") * dt(hidden ** -0.5)
        proj = norm(proj.reshape(T, n, ple), "model.per_layer_projection_norm.weight")
        per_layer = (proj + tok.reshape(T, n, ple)) * dt(2.0 ** -0.5)
    last_of_type = {t: max(j for j in range(first_shared) if types[j] == t) for t in set(types[:first_shared])}
    shared = {}

    def softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    for i in range(n):
        p = f"model.layers.{i}."
        lt = types[i]
        full = lt == "full_attention"
        D = hd_full if full else hd_swa
        KV = kv_full if full else kv_swa
        cos, sin = rope[lt]
        h = norm(x, p + "input_layernorm.weight")
        q = norm(lin(h, p + "self_attn.q_proj").reshape(T, H, D), p + "self_attn.q_norm.weight")
        q = apply_rotary(q, cos, sin, D)
        if i >= first_shared:
            k, v = shared[lt]
        else:
            k = lin(h, p + "self_attn.k_proj").reshape(T, KV, D)
            v = lin(h, p + "self_attn.v_proj").reshape(T, KV, D) if p + "self_attn.v_proj.weight" in W else k
            k = apply_rotary(norm(k, p + "self_attn.k_norm.weight"), cos, sin, D)
            v = norm(v)
            if last_of_type.get(lt) == i:
                shared[lt] = (k, v)
        rep = H // k.shape[1]
        kr, vr = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, kr) + masks[lt]
        o = np.einsum("hts,shd->thd", softmax(s), vr).reshape(T, H * D)
        x = x + norm(lin(o, p + "self_attn.o_proj"), p + "post_attention_layernorm.weight")
        residual = x
        hm = norm(x, p + "pre_feedforward_layernorm.weight")
        m = lin(activation(act, lin(hm, p + "mlp.gate_proj")) * lin(hm, p + "mlp.up_proj"), p + "mlp.down_proj")
        if c.get("enable_moe_block"):
            m1 = norm(m, p + "post_feedforward_layernorm_1.weight")
            r = norm(residual) * W[p + "router.scale"] * dt(hidden ** -0.5)
            probs = softmax(lin(r, p + "router.proj"))
            h2 = norm(residual, p + "pre_feedforward_layernorm_2.weight")
            out = np.zeros_like(h2)
            for t in range(T):
                top = np.argsort(-probs[t], kind="stable")[: c["top_k_experts"]]
                wt = probs[t, top] / probs[t, top].sum() * W[p + "router.per_expert_scale"][top]
                for e, we in zip(top, wt):
                    g, u = np.split(h2[t:t + 1] @ W[p + "experts.gate_up_proj"][e].T, 2, axis=-1)
                    out[t] += we * ((activation(act, g) * u) @ W[p + "experts.down_proj"][e].T)[0]
            m = m1 + norm(out, p + "post_feedforward_layernorm_2.weight")
        x = residual + norm(m, p + "post_feedforward_layernorm.weight")
        if ple:
            g = activation(act, lin(x, p + "per_layer_input_gate")) * per_layer[:, i, :]
            x = x + norm(lin(g, p + "per_layer_projection"), p + "post_per_layer_input_norm.weight")
        x = x * W[p + "layer_scalar"]
    x = norm(x, "model.norm.weight")
    head = W["model.embed_tokens.weight"] if cfg.tied or "lm_head.weight" not in W else W["lm_head.weight"]
    logits = x @ head.T
    cap = c.get("final_logit_softcapping")
    if cap:
        logits = np.tanh(logits / cap) * cap
    return logits


def forward_gemma3n(cfg, W, tokens, dt):
    """transformers' modeling_gemma3n text model: AltUp (4 streams, the first active: router modalities from the
    router-normed stream times 1/hidden, tanh; predict mixes the streams by prediction_coefs, correct adds the
    innovation scaled by correction_coefs + 1), LAuReL (x + norm(linear_right(linear_left(x)))), per-layer embeddings
    gated into the non-active streams, activation sparsity (gate values below mean + icdf(p) * std, population std,
    cut to 0 before the GELU), KV sharing (layers from num_hidden_layers - num_kv_shared_layers reuse the last earlier
    layer of their type), q/k norms, v normed without weight, attention scale 1, local rope base on sliding layers,
    RMSNorm weights used as w, final logit softcapping. cfg.sparsity_ddof = 1 takes the sample std instead, as
    llama.cpp's gaussian_topk does (src/models/gemma3n.cpp: sum of squares / (n - 1))."""
    c = cfg.raw
    ddof = getattr(cfg, "sparsity_ddof", 0)
    T, H, KV, D, n, hidden, eps = len(tokens), cfg.n_head, cfg.n_kv, cfg.head_dim, cfg.n_layer, cfg.hidden, cfg.eps
    types = c["layer_types"]
    n_alt, active = c["altup_num_inputs"], c["altup_active_idx"]
    ple = c["hidden_size_per_layer_input"]
    first_shared = n - (c.get("num_kv_shared_layers") or 0)
    act = "gelu_pytorch_tanh"
    pos = np.arange(T, dtype=np.float64)

    def norm(x, wname=None):
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
        return y * W[wname] if wname else y

    def lin(h, name):
        return h @ W[name + ".weight"].T

    def table(theta):
        ang = np.outer(pos, 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D)))
        emb = np.concatenate([ang, ang], axis=-1)
        return np.cos(emb).astype(dt), np.sin(emb).astype(dt)

    rope = {"full_attention": table(c["rope_theta"]), "sliding_attention": table(c["rope_local_base_freq"])}
    mask = np.triu(np.full((T, T), -np.inf, dtype=dt), k=1)
    far = np.subtract.outer(np.arange(T), np.arange(T)) >= c["sliding_window"]
    masks = {"full_attention": mask, "sliding_attention": mask + np.where(far, -np.inf, 0.0).astype(dt)}
    icdf = np.vectorize(lambda p: -math.inf if p <= 0 else math.sqrt(2.0) * _erfinv(2.0 * p - 1.0))
    sparsity = icdf(np.asarray(c["activation_sparsity_pattern"], dtype=np.float64))

    def softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def rms(x):
        return np.sqrt(np.maximum(np.mean(x * x, axis=-1, keepdims=True), 1e-5))

    x0 = W["model.embed_tokens.weight"][np.asarray(tokens)] * dt(math.sqrt(hidden))
    tok = W["model.embed_tokens_per_layer.weight"][np.asarray(tokens)] * dt(math.sqrt(ple))
    proj = lin(x0, "model.per_layer_model_projection") * dt(hidden ** -0.5)
    proj = norm(proj.reshape(T, n, ple), "model.per_layer_projection_norm.weight")
    per_layer = (proj + tok.reshape(T, n, ple)) * dt(2.0 ** -0.5)
    mag = np.sqrt(np.mean(x0 * x0, axis=-1, keepdims=True))
    streams = [x0] + [(lambda a: a * mag / rms(a))(lin(x0, f"model.altup_projections.{i}")) for i in range(n_alt - 1)]
    hs = np.stack(streams)  # [n_alt, T, hidden]
    last_of_type = {t: max(j for j in range(first_shared) if types[j] == t) for t in set(types[:first_shared])}
    shared = {}

    def modalities(x, p):
        return np.tanh(lin(norm(x, p + "altup.router_norm.weight") * dt(1.0 / hidden), p + "altup.modality_router"))

    for i in range(n):
        p = f"model.layers.{i}."
        lt = types[i]
        cos, sin = rope[lt]
        # AltUp predict: stream j += sum_k coef[j * n_alt + k] * stream k
        coefs = lin(modalities(hs[active], p), p + "altup.prediction_coefs").reshape(T, n_alt, n_alt)
        pred = hs + np.einsum("tjk,ktd->jtd", coefs, hs)
        a = pred[active]
        h = norm(a, p + "input_layernorm.weight")
        laurel = h + norm(lin(lin(h, p + "laurel.linear_left"), p + "laurel.linear_right"),
                          p + "laurel.post_laurel_norm.weight")
        q = apply_rotary(norm(lin(h, p + "self_attn.q_proj").reshape(T, H, D), p + "self_attn.q_norm.weight"),
                         cos, sin, D)
        if i >= first_shared:
            k, v = shared[lt]
        else:
            k = apply_rotary(norm(lin(h, p + "self_attn.k_proj").reshape(T, KV, D), p + "self_attn.k_norm.weight"),
                             cos, sin, D)
            v = norm(lin(h, p + "self_attn.v_proj").reshape(T, KV, D))
            if last_of_type.get(lt) == i:
                shared[lt] = (k, v)
        rep = H // KV
        kr, vr = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, kr) + masks[lt]
        o = np.einsum("hts,shd->thd", softmax(s), vr).reshape(T, H * D)
        attn = a + norm(lin(o, p + "self_attn.o_proj"), p + "post_attention_layernorm.weight")
        attn_laurel = (attn + laurel) * dt(2.0 ** -0.5)
        hm = norm(attn_laurel, p + "pre_feedforward_layernorm.weight")
        g = lin(hm, p + "mlp.gate_proj")
        if c["activation_sparsity_pattern"][i] > 0.0:
            cut = g.mean(axis=-1, keepdims=True) + g.std(axis=-1, keepdims=True, ddof=ddof) * sparsity[i]
            g = np.maximum(g - cut, 0.0)
        m = lin(activation(act, g) * lin(hm, p + "mlp.up_proj"), p + "mlp.down_proj")
        out = attn_laurel + norm(m, p + "post_feedforward_layernorm.weight")
        # AltUp correct: every stream += (correction_coefs(modalities) + 1) * (out - predicted active stream)
        cc = lin(modalities(out, p), p + "altup.correction_coefs") + 1.0  # [T, n_alt]
        hs = pred + cc.T[:, :, None] * (out - a)[None]
        first = hs[active] * W[p + "altup.correct_output_scale"]
        first = activation(act, lin(first, p + "per_layer_input_gate")) * per_layer[:, i, :]
        first = norm(lin(first, p + "per_layer_projection"), p + "post_per_layer_input_norm.weight")
        hs = np.concatenate([hs[:1], hs[1:] + first[None]])
    mag = np.sqrt(np.mean(hs[0] * hs[0], axis=-1, keepdims=True))
    outs = [hs[0]] + [(lambda a: a * mag / rms(a))(lin(hs[i], f"model.altup_unembed_projections.{i - 1}"))
                      for i in range(1, n_alt)]
    x = norm(np.mean(np.stack(outs), axis=0), "model.norm.weight")
    logits = x @ W["model.embed_tokens.weight"].T
    cap = c.get("final_logit_softcapping")
    if cap:
        logits = np.tanh(logits / cap) * cap
    return logits


def _erfinv(y):
    """Inverse error function in float64 (Newton on math.erf from a rational first guess)."""
    if abs(y) >= 1.0:
        return math.copysign(math.inf, y)
    w = -math.log((1.0 - y) * (1.0 + y))
    x = math.copysign(math.sqrt(w), y) * 0.9
    for _ in range(100):
        step = (math.erf(x) - y) / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
        x -= step
        if abs(step) < 1e-17:
            break
    return x


def forward_llama4(cfg, W, tokens, dt):
    c = cfg.raw
    T, H, KV, D = len(tokens), cfg.n_head, cfg.n_kv, cfg.head_dim
    x = W["model.embed_tokens.weight"][np.asarray(tokens)]
    pos = np.arange(T, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # llama3 scaling with low == high frequency factor
        ang = np.outer(pos, inv_freq(cfg))  # [T, D/2]: pair i turns by pos * f_i
    cos, sin = np.cos(ang).astype(dt)[:, None, :], np.sin(ang).astype(dt)[:, None, :]
    chunk = c.get("attention_chunk_size") or T
    n_rope = c.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(cfg.n_layer)]
    step = c.get("interleave_moe_layer_step", 1)
    moe_layers = c.get("moe_layers")
    if moe_layers is None:
        moe_layers = list(range(step - 1, cfg.n_layer, step))
    temp = (1.0 + c.get("attn_scale", 0.1) * np.log(np.floor((pos + 1.0) / c.get("floor_scale", 8192)) + 1.0)).astype(dt)

    def lin(h, name):
        return h @ W[name + ".weight"].T

    def mlp(h, p):
        return lin(activation(cfg.act, lin(h, p + "gate_proj")) * lin(h, p + "up_proj"), p + "down_proj")

    def l2(v):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + cfg.eps)

    def rope(v):  # view_as_complex on (2i, 2i+1) times exp(i * angle)
        y = np.empty_like(v)
        y[..., 0::2] = v[..., 0::2] * cos - v[..., 1::2] * sin
        y[..., 1::2] = v[..., 0::2] * sin + v[..., 1::2] * cos
        return y

    def moe(h, p):
        logits = lin(h, p + "feed_forward.router")  # [T, E]
        out = mlp(h, p + "feed_forward.shared_expert.")
        gu, dn = W[p + "feed_forward.experts.gate_up_proj"], W[p + "feed_forward.experts.down_proj"]
        top = np.argsort(-logits, axis=-1, kind="stable")[:, : cfg.top_k]  # [T, k]
        for e in range(gu.shape[0]):
            rows = np.nonzero((top == e).any(axis=-1))[0]
            if rows.size == 0:
                continue
            xe = h[rows] * (1.0 / (1.0 + np.exp(-logits[rows, e])))[:, None]  # the sigmoid score scales the input
            g, u = np.split(xe @ gu[e], 2, axis=-1)
            out[rows] += (activation(cfg.act, g) * u) @ dn[e]
        return out

    rep, blk = H // KV, 512
    for i in range(cfg.n_layer):
        p = f"model.layers.{i}."
        use_rope = bool(n_rope[i])
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg.eps, False)
        q = lin(h, p + "self_attn.q_proj").reshape(T, H, D)
        k = lin(h, p + "self_attn.k_proj").reshape(T, KV, D)
        v = lin(h, p + "self_attn.v_proj").reshape(T, KV, D)
        if use_rope:
            q, k = rope(q), rope(k)
            if c.get("use_qk_norm"):
                q, k = l2(q), l2(k)
        elif c.get("attn_temperature_tuning"):
            q = q * temp[:, None, None]
        k, v = np.repeat(k, rep, axis=1).transpose(1, 2, 0), np.repeat(v, rep, axis=1).transpose(1, 0, 2)
        o = np.empty((T, H, D), dtype=dt)
        for t0 in range(0, T, blk):
            t1 = min(T, t0 + blk)
            k0 = (t0 // chunk) * chunk if use_rope else 0  # a chunked layer sees no key before the block's chunk
            s = np.matmul(q[t0:t1].transpose(1, 0, 2), k[:, :, k0:t1]) * dt(1.0 / math.sqrt(D))  # [H, b, keys]
            qt, kt = np.arange(t0, t1)[:, None], np.arange(k0, t1)[None, :]
            visible = kt <= qt
            if use_rope:
                visible &= kt // chunk == qt // chunk
            s = np.where(visible[None], s, -np.inf)
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s = s / s.sum(axis=-1, keepdims=True)
            o[t0:t1] = np.matmul(s, v[:, k0:t1]).transpose(1, 0, 2)
        x = x + lin(o.reshape(T, H * D), p + "self_attn.o_proj")
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps, False)
        x = x + (moe(h, p) if i in moe_layers else mlp(h, p + "feed_forward."))
    x = rms_norm(x, W["model.norm.weight"], cfg.eps, False)
    head = W["model.embed_tokens.weight"] if cfg.tied or "lm_head.weight" not in W else W["lm_head.weight"]
    return x @ head.T


def forward(cfg, w, tokens, dt=np.float64):
    W = {k: v.astype(dt) for k, v in w.items()}
    if cfg.gemma4:
        return forward_gemma4(cfg, W, tokens, dt)
    if cfg.model_type in ("gemma3n_text", "gemma3n"):
        return forward_gemma3n(cfg, W, tokens, dt)
    if cfg.model_type in ("llama4_text", "llama4"):
        return forward_llama4(cfg, W, tokens, dt)
    T, H, KV, D = len(tokens), cfg.n_head, cfg.n_kv, cfg.head_dim
    x = W["model.embed_tokens.weight"][np.asarray(tokens)] * dt(cfg.embed_scale)
    pos = np.arange(T, dtype=np.float64)

    def rope_table(freqs):
        ang = np.outer(pos, freqs)
        emb = np.concatenate([ang, ang], axis=-1)
        ms = yarn_mscale(cfg)
        return (np.cos(emb) * ms).astype(dt), (np.sin(emb) * ms).astype(dt)

    rope_global = rope_table(inv_freq(cfg))
    # Gemma3's local layers: their own base, no scaling (transformers' rotary_emb_local)
    rope_local = rope_table(inv_freq(cfg, cfg.local_theta, scaling=False)) if cfg.local_theta else rope_global
    mask = np.triu(np.full((T, T), -np.inf, dtype=dt), k=1)
    if cfg.window:
        # sliding window: query t sees keys s with t - s < window
        swa_mask = mask + np.where(np.subtract.outer(np.arange(T), np.arange(T)) >= cfg.window, -np.inf, 0.0).astype(dt)
    else:
        swa_mask = mask

    def lin(h, name):
        y = h @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
        return y

    def dense_mlp(h, prefix, fused=False):
        if fused:
            gate, up = np.split(lin(h, prefix + "gate_up_proj"), 2, axis=-1)
        else:
            gate, up = lin(h, prefix + "gate_proj"), lin(h, prefix + "up_proj")
        return lin(activation(cfg.act, gate) * up, prefix + "down_proj")

    def softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=-1, keepdims=True)

    def gpt_oss_moe(h, p):
        # GptOssTopKRouter: top-k of the router logits, softmax over those k; GptOssExperts: gate = even columns,
        # up = odd columns of gate_up_proj [E, hidden, 2 * ff]; gate clamped above, up both sides at swiglu_limit;
        # (up + 1) * gate * sigmoid(1.702 * gate), then down_proj [E, ff, hidden] and its bias
        logits = lin(h, p + "mlp.router")
        gu, gub = W[p + "mlp.experts.gate_up_proj"], W[p + "mlp.experts.gate_up_proj_bias"]
        dn, dnb = W[p + "mlp.experts.down_proj"], W[p + "mlp.experts.down_proj_bias"]
        lim = cfg.swiglu_limit
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            top = np.argsort(-logits[t], kind="stable")[: cfg.top_k]
            w = softmax(logits[t, top])
            for e, we in zip(top, w):
                y = h[t] @ gu[e] + gub[e]
                g, u = np.minimum(y[0::2], lim), np.clip(y[1::2], -lim, lim)
                act = (u + 1) * g / (1.0 + np.exp(-1.702 * g))
                out[t] += we * (act @ dn[e] + dnb[e])
        return out

    def glm4moe_mlp(h, p):  # Glm4MoeMoE: sigmoid router with the selection bias, then the shared experts
        c = cfg.raw
        scores = sigmoid(lin(h, p + "mlp.gate"))  # [T, E]
        choice = scores + W[p + "mlp.gate.e_score_correction_bias"]
        n_group, topk_group = c.get("n_group", 1), c.get("topk_group", 1)
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            groups = choice[t].reshape(n_group, -1)
            group_score = np.sort(groups, axis=-1)[:, -2:].sum(-1)
            keep = np.argsort(-group_score, kind="stable")[:topk_group]
            masked = np.full_like(groups, 0.0)
            masked[keep] = groups[keep]
            top = np.argsort(-masked.reshape(-1), kind="stable")[: cfg.top_k]
            w = scores[t, top]
            if cfg.norm_topk:
                w = w / (w.sum() + 1e-20)
            w = w * c.get("routed_scaling_factor", 1.0)
            for e, we in zip(top, w):
                out[t] += we * dense_mlp(h[t:t + 1], f"{p}mlp.experts.{e}.")[0]
        return out + dense_mlp(h, p + "mlp.shared_experts.")

    def minimax_mlp(h, p):  # MiniMaxM2SparseMoeBlock: sigmoid scores, choice by score + bias, renormalized top-k
        scores = sigmoid(lin(h, p + "block_sparse_moe.gate"))  # [T, E]
        choice = scores + W[p + "block_sparse_moe.e_score_correction_bias"]
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            top = np.argsort(-choice[t], kind="stable")[: cfg.top_k]
            wt = scores[t, top]
            wt = wt / wt.sum()
            for e, we in zip(top, wt):
                ep = f"{p}block_sparse_moe.experts.{e}."
                y = lin(activation(cfg.act, lin(h[t:t + 1], ep + "w1")) * lin(h[t:t + 1], ep + "w3"), ep + "w2")
                out[t] += we * y[0]
        return out

    def moe_mlp(h, p):
        if cfg.minimax:
            return minimax_mlp(h, p)
        if cfg.glm4moe:
            return glm4moe_mlp(h, p)
        if cfg.gpt_oss:
            return gpt_oss_moe(h, p)
        mixtral = cfg.model_type == "mixtral"
        router = p + ("block_sparse_moe.gate" if mixtral else "mlp.gate")
        probs = softmax(lin(h, router))  # [T, E]
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            top = np.argsort(-probs[t], kind="stable")[: cfg.top_k]
            w = probs[t, top]
            if cfg.norm_topk:
                w = w / w.sum()
            for e, we in zip(top, w):
                if mixtral:
                    ep = f"{p}block_sparse_moe.experts.{e}."
                    y = lin(activation(cfg.act, lin(h[t:t + 1], ep + "w1")) * lin(h[t:t + 1], ep + "w3"), ep + "w2")
                elif p + "mlp.experts.gate_up_proj" in W:  # fused 3-D experts: gate rows, then up rows
                    gu = W[p + "mlp.experts.gate_up_proj"][e]
                    g, u = np.split(h[t:t + 1] @ gu.T, 2, axis=-1)
                    y = (activation(cfg.act, g) * u) @ W[p + "mlp.experts.down_proj"][e].T
                else:
                    y = dense_mlp(h[t:t + 1], f"{p}mlp.experts.{e}.")
                out[t] += we * y[0]
        if p + "mlp.shared_expert_gate.weight" in W:
            g = 1.0 / (1.0 + np.exp(-lin(h, p + "mlp.shared_expert_gate")))  # [T, 1]
            out = out + g * dense_mlp(h, p + "mlp.shared_expert.")
        return out

    def rope_pairs(x, cos, sin):
        """DeepSeek's interleaved rotary (apply_rotary_pos_emb_interleave): pairs (2i, 2i+1) rotate by angle i. The
        result keeps the pair layout; q and k share it, so their dot products equal transformers' permuted ones."""
        half = x.shape[-1] // 2
        c, s_ = cos[:, None, :half], sin[:, None, :half]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        y = np.empty_like(x)
        y[..., 0::2] = x0 * c - x1 * s_
        y[..., 1::2] = x0 * s_ + x1 * c
        return y

    def mla(h, p):
        c = cfg.raw
        nope, rot, dv, r = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
        if c.get("q_lora_rank") is None:
            q = lin(h, p + "q_proj")
        else:
            q = lin(rms_norm(lin(h, p + "q_a_proj"), W[p + "q_a_layernorm.weight"], cfg.eps, False), p + "q_b_proj")
        q = q.reshape(T, H, nope + rot)
        ckv = lin(h, p + "kv_a_proj_with_mqa")  # [T, r + rot]: the latent, then one shared rotary key
        latent = rms_norm(ckv[:, :r], W[p + "kv_a_layernorm.weight"], cfg.eps, False)
        kv = lin(latent, p + "kv_b_proj").reshape(T, H, nope + dv)
        cos, sin = rope_global
        q_pe = rope_pairs(q[..., nope:], cos, sin)
        k_pe = rope_pairs(ckv[:, None, r:], cos, sin)
        qf = np.concatenate([q[..., :nope], q_pe], axis=-1)
        kf = np.concatenate([kv[..., :nope], np.repeat(k_pe, H, axis=1)], axis=-1)
        s = np.einsum("thd,shd->hts", qf, kf) * dt(cfg.attn_scale) + mask
        s = s - s.max(axis=-1, keepdims=True)
        pr = np.exp(s)
        pr = pr / pr.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", pr, kv[..., nope:]).reshape(T, H * dv)
        return lin(o, p + "o_proj")

    def deepseek_moe(h, p):
        """DeepseekV3MoE with noaux_tc routing: sigmoid scores; choice by score + e_score_correction_bias within the
        topk_group groups whose two best biased scores sum highest (the others masked to -inf, as llama.cpp and
        DeepSeek's inference code do); weights the unbiased scores, renormalized (norm_topk_prob), times
        routed_scaling_factor; plus the shared experts."""
        c = cfg.raw
        E, G, TG = cfg.n_expert, c.get("n_group") or 1, c.get("topk_group") or 1
        scores = sigmoid(lin(h, p + "mlp.gate"))  # [T, E]
        choice = scores + W[p + "mlp.gate.e_score_correction_bias"]
        out = np.zeros_like(h)
        for t in range(h.shape[0]):
            ch = choice[t].copy()
            if G > 1:
                grp = ch.reshape(G, E // G)
                gs = np.sort(grp, axis=-1)[:, -2:].sum(axis=-1)
                keep = np.argsort(-gs, kind="stable")[:TG]
                masked = np.full_like(grp, -np.inf)
                masked[keep] = grp[keep]
                ch = masked.reshape(E)
            top = np.argsort(-ch, kind="stable")[: cfg.top_k]
            wt = scores[t, top]
            if cfg.norm_topk:
                wt = wt / wt.sum()
            wt = wt * c.get("routed_scaling_factor", 1.0)
            for e, we in zip(top, wt):
                out[t] += we * dense_mlp(h[t:t + 1], f"{p}mlp.experts.{e}.")[0]
        return out + dense_mlp(h, p + "mlp.shared_experts.")

    def is_sparse(i):
        if cfg.deepseek:
            return i >= (cfg.raw.get("first_k_dense_replace") or 0)
        if not cfg.moe:
            return False
        if cfg.model_type == "mixtral" or cfg.minimax:
            return True
        if cfg.glm4moe:
            return i >= cfg.raw.get("first_k_dense_replace", 0)
        step = cfg.raw.get("decoder_sparse_step", 1) or 1
        return i not in (cfg.raw.get("mlp_only_layers") or []) and cfg.n_expert > 0 and (i + 1) % step == 0

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    def gated_delta_net(h, p):
        c = cfg.raw
        nk, nv = c["linear_num_key_heads"], c["linear_num_value_heads"]
        hk, hv = c["linear_key_head_dim"], c["linear_value_head_dim"]
        r = nv // nk
        if p + "in_proj_qkvz.weight" in W:  # Qwen3-Next: per K head [q, k, v, z] and [b, a]
            g4 = lin(h, p + "in_proj_qkvz").reshape(T, nk, 2 * hk + 2 * r * hv)
            qkvz = np.split(g4, [hk, 2 * hk, 2 * hk + r * hv], axis=-1)
            mixed = np.concatenate([qkvz[0].reshape(T, -1), qkvz[1].reshape(T, -1), qkvz[2].reshape(T, -1)], axis=-1)
            z_all = qkvz[3].reshape(T, nv, hv)
            ba = lin(h, p + "in_proj_ba").reshape(T, nk, 2 * r)
            b_all, a_all = ba[..., :r].reshape(T, nv), ba[..., r:].reshape(T, nv)
        else:
            mixed = lin(h, p + "in_proj_qkv")  # [T, C]
            z_all = lin(h, p + "in_proj_z").reshape(T, nv, hv)
            b_all, a_all = lin(h, p + "in_proj_b"), lin(h, p + "in_proj_a")
        cw = W[p + "conv1d.weight"][:, 0, :]  # [C, K]: causal depthwise conv, zero history
        K = cw.shape[1]
        padded = np.concatenate([np.zeros((K - 1, mixed.shape[1]), dtype=dt), mixed], axis=0)
        conv = sum(padded[j:j + T] * cw[:, j] for j in range(K))
        conv = activation(cfg.act, conv)
        q = conv[:, :nk * hk].reshape(T, nk, hk)
        k = conv[:, nk * hk:2 * nk * hk].reshape(T, nk, hk)
        v = conv[:, 2 * nk * hk:].reshape(T, nv, hv)
        q, k = np.repeat(q, nv // nk, axis=1), np.repeat(k, nv // nk, axis=1)  # V head j reads K head j // r
        q = q / np.sqrt((q * q).sum(-1, keepdims=True) + 1e-6) / math.sqrt(hk)
        k = k / np.sqrt((k * k).sum(-1, keepdims=True) + 1e-6)
        beta = sigmoid(b_all)  # [T, nv]
        a = a_all + W[p + "dt_bias"]
        g = -np.exp(W[p + "A_log"]) * np.logaddexp(0.0, a)  # softplus
        S = np.zeros((nv, hk, hv), dtype=dt)
        out = np.zeros((T, nv, hv), dtype=dt)
        for t in range(T):
            S = S * np.exp(g[t])[:, None, None]
            kv_mem = np.einsum("hkv,hk->hv", S, k[t])
            delta = (v[t] - kv_mem) * beta[t][:, None]
            S = S + k[t][:, :, None] * delta[:, None, :]
            out[t] = np.einsum("hkv,hk->hv", S, q[t])
        o = rms_norm(out, W[p + "norm.weight"], cfg.eps, False) * activation(cfg.act, z_all)
        return lin(o.reshape(T, nv * hv), p + "out_proj")

    for i in range(cfg.n_layer):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
        if cfg.deepseek:
            x = x + mla(h, p + "self_attn.")
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps, False)
            x = x + (deepseek_moe(h, p) if is_sparse(i) else dense_mlp(h, p + "mlp."))
            continue
        if cfg.qwen35 and cfg.linear[i]:
            x = x + gated_delta_net(h, p + "linear_attn.")
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
            x = x + (moe_mlp(h, p) if is_sparse(i) else dense_mlp(h, p + "mlp."))
            continue
        gate = None
        if cfg.qwen35:  # q_proj rows per head: D query rows, then D output-gate rows
            qg = lin(h, p + "self_attn.q_proj").reshape(T, H, 2 * D)
            q, gate = qg[..., :D].reshape(T, H * D), qg[..., D:].reshape(T, H * D)
            k, v = lin(h, p + "self_attn.k_proj"), lin(h, p + "self_attn.v_proj")
        elif cfg.fused_qkv:
            qkv = lin(h, p + "self_attn.qkv_proj")
            q, k, v = np.split(qkv, [H * D, H * D + KV * D], axis=-1)
        else:
            q, k, v = lin(h, p + "self_attn.q_proj"), lin(h, p + "self_attn.k_proj"), lin(h, p + "self_attn.v_proj")
        if cfg.minimax:  # one RMSNorm over all query (key) heads together
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg.eps, False)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg.eps, False)
        q, k, v = q.reshape(T, H, D), k.reshape(T, KV, D), v.reshape(T, KV, D)
        if cfg.qk_norm:
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], cfg.eps, cfg.norm_plus_one)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], cfg.eps, cfg.norm_plus_one)
        cos, sin = rope_local if cfg.sliding[i] else rope_global
        q, k = apply_rotary(q, cos, sin, cfg.rotary_dim), apply_rotary(k, cos, sin, cfg.rotary_dim)
        if cfg.llama4_beta:
            orig = cfg.rope_scaling["original_max_position_embeddings"]
            q = q * (1 + cfg.llama4_beta * np.log1p(np.floor(pos / orig))).astype(dt)[:, None, None]
        rep = H // KV  # GQA: query head j uses kv head j // rep (repeat_kv)
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) * dt(cfg.attn_scale)
        if cfg.attn_softcap:
            s = np.tanh(s / cfg.attn_softcap) * cfg.attn_softcap
        s = s + (swa_mask if cfg.sliding[i] else mask)
        if cfg.gpt_oss:  # one learned sink logit per head joins every softmax (and takes its share)
            sink = W[p + "self_attn.sinks"][:, None, None]
            m = np.maximum(s.max(axis=-1, keepdims=True), sink)
            pr = np.exp(s - m)
            pr = pr / (pr.sum(axis=-1, keepdims=True) + np.exp(sink - m))
        else:
            s = s - s.max(axis=-1, keepdims=True)
            pr = np.exp(s)
            pr = pr / pr.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", pr, v).reshape(T, H * D)
        if gate is not None:
            o = o * sigmoid(gate)
        o = lin(o, p + "self_attn.o_proj")
        if cfg.sandwich:  # Gemma2/3: norm the attention output, then a pre-feed-forward norm
            x = x + rms_norm(o, W[p + "post_attention_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
            h = rms_norm(x, W[p + "pre_feedforward_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
        else:
            x = x + o
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
        m = moe_mlp(h, p) if is_sparse(i) else dense_mlp(h, p + "mlp.", cfg.fused_gate_up)
        if cfg.sandwich:
            m = rms_norm(m, W[p + "post_feedforward_layernorm.weight"], cfg.eps, cfg.norm_plus_one)
        x = x + m
    x = rms_norm(x, W["model.norm.weight"], cfg.eps, cfg.norm_plus_one)
    head = W["model.embed_tokens.weight"] if cfg.tied or "lm_head.weight" not in W else W["lm_head.weight"]
    logits = x @ head.T  # [T, V]
    if cfg.final_softcap:
        logits = np.tanh(logits / cfg.final_softcap) * cfg.final_softcap
    return logits


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
