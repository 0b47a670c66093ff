#!/usr/bin/python3
"""Independent numpy forward of a Gemma 3 vision tower and multimodal projector (the conformance oracle for mmproj).

Follows transformers' modeling_siglip (SiglipVisionTransformer without the pooling head) and modeling_gemma3
(Gemma3MultiModalProjector), in float64, with numpy only:
  patches of pixel_values [3, H, W] -> Conv2d(kernel = stride = patch) as a matmul, + bias, + position_embedding;
  per layer x += out_proj(softmax(q k^T / sqrt(head_dim)) v) of LayerNorm1(x), then x += fc2(gelu_tanh(fc1(
  LayerNorm2(x)))); post_layernorm; the patch grid average-pooled by (patches per side / tokens per side);
  Gemma3RMSNorm (x / rms * (1 + w)); @ mm_input_projection_weight [vision hidden, text hidden].
Weights come either from a merged Hugging Face checkpoint (hf_weights) or from an mmproj GGUF (gguf_weights: the
converter's names, its soft_emb_norm already holding 1 + w, hparams from the clip.* keys); both give one dict in
the same vocabulary, so the forward is the same code for both.

    /usr/bin/python3 tests/reference/vision_forward.py (--hf DIR | --gguf FILE) [--out emb.npy]
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance", "quantize"))
import st_io  # noqa: E402
from compare_gguf import parse as parse_gguf  # noqa: E402  (the tests' independent GGUF reader)


def test_image(image_size):
    """A fixed [3, S, S] image in [-1, 1] (what Gemma3ImageProcessor's rescale and normalize by 0.5/0.5 give)."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(image_size), np.arange(image_size), indexing="ij")
    return np.sin(0.37 * x + 0.23 * y * (c + 1) + 0.5 * c) * np.cos(0.11 * x * y / image_size + c)


def hf_weights(d):
    """Weights and hparams from a merged HF Gemma3ForConditionalGeneration directory (any number of shards)."""
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    vc = cfg["vision_config"]
    t = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            for k, (_, a) in st_io.read(os.path.join(d, fn)).items():
                t[k] = a.astype(np.float64)
    v = "vision_tower.vision_model."
    w = {"patch_w": t[v + "embeddings.patch_embedding.weight"], "patch_b": t[v + "embeddings.patch_embedding.bias"],
         "pos": t[v + "embeddings.position_embedding.weight"],
         "post_w": t[v + "post_layernorm.weight"], "post_b": t[v + "post_layernorm.bias"],
         # Gemma3RMSNorm multiplies by 1 + w
         "mm_norm": 1.0 + t["multi_modal_projector.mm_soft_emb_norm.weight"],
         "mm_proj": t["multi_modal_projector.mm_input_projection_weight"], "layers": []}
    for i in range(vc["num_hidden_layers"]):
        p = f"{v}encoder.layers.{i}."
        lw = {}
        for ours, hf in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                         ("o", "self_attn.out_proj"), ("ln1", "layer_norm1"), ("ln2", "layer_norm2"),
                         ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
            lw[ours + "_w"], lw[ours + "_b"] = t[p + hf + ".weight"], t[p + hf + ".bias"]
        w["layers"].append(lw)
    with open(os.path.join(d, "processor_config.json")) as f:
        seq = json.load(f).get("image_seq_length", 256)
    hp = {"image_size": vc["image_size"], "patch_size": vc["patch_size"], "heads": vc["num_attention_heads"],
          "eps": vc.get("layer_norm_eps", 1e-6), "tokens_per_side": int(math.isqrt(seq))}
    return w, hp


def _gguf_array(t):
    ne = list(reversed(t["ne"]))  # row-major shape
    n = int(np.prod(ne))
    if t["type"] == 0:
        a = np.frombuffer(t["data"][:4 * n], dtype="<f4")
    elif t["type"] == 1:
        a = np.frombuffer(t["data"][:2 * n], dtype="<f2")
    elif t["type"] == 8:  # Q8_0: blocks of an f16 scale and 32 int8
        nb = n // 32
        raw = np.frombuffer(t["data"][:34 * nb], dtype=np.uint8).reshape(nb, 34)
        d = raw[:, :2].copy().view("<f2").astype(np.float64)
        q = raw[:, 2:].copy().view(np.int8).astype(np.float64)
        a = (d * q).reshape(-1)
    else:
        raise SystemExit(f"{t['name']}: ggml type {t['type']} not handled")
    return a.astype(np.float64).reshape(ne)


def gguf_weights(path):
    """Weights and hparams read back from an mmproj GGUF (clip.* keys, v.* / mm.* tensors)."""
    g = parse_gguf(path)
    kv = {k: v for k, _, v in g["kvs"]}

    def val(k, default=None):
        v = kv.get(k, default)
        return v[2] if isinstance(v, tuple) and v and v[0] == "f32bits" else v

    assert val("general.architecture") == "clip" and val("general.type") == "mmproj", path
    assert val("clip.projector_type") == "gemma3", path
    t = {x["name"]: _gguf_array(x) for x in g["tensors"]}
    w = {"patch_w": t["v.patch_embd.weight"], "patch_b": t["v.patch_embd.bias"], "pos": t["v.position_embd.weight"],
         "post_w": t["v.post_ln.weight"], "post_b": t["v.post_ln.bias"],
         "mm_norm": t["mm.soft_emb_norm.weight"],  # the converter stored 1 + w
         "mm_proj": t["mm.input_projection.weight"], "layers": []}
    for i in range(val("clip.vision.block_count")):
        p = f"v.blk.{i}."
        lw = {}
        for ours, gg in (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_out"), ("ln1", "ln1"),
                         ("ln2", "ln2"), ("fc1", "ffn_up"), ("fc2", "ffn_down")):
            lw[ours + "_w"], lw[ours + "_b"] = t[p + gg + ".weight"], t[p + gg + ".bias"]
        w["layers"].append(lw)
    image, patch = val("clip.vision.image_size"), val("clip.vision.patch_size")
    scale = val("clip.vision.projector.scale_factor", 4)  # llama.cpp's default when absent
    hp = {"image_size": image, "patch_size": patch, "heads": val("clip.vision.attention.head_count"),
          "eps": float(val("clip.vision.attention.layer_norm_epsilon")),
          "tokens_per_side": (image // patch) // scale}
    return w, hp


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(w, hp, image):
    """-> [tokens, text hidden] image embeddings."""
    s, p = hp["image_size"], hp["patch_size"]
    g = s // p
    # Conv2d(3, hidden, kernel=p, stride=p): each patch [3, p, p] flattened against the kernel [hidden, 3, p, p]
    patches = image.reshape(3, g, p, g, p).transpose(1, 3, 0, 2, 4).reshape(g * g, 3 * p * p)
    x = patches @ w["patch_w"].reshape(w["patch_w"].shape[0], -1).T + w["patch_b"]
    x = x + w["pos"][: g * g]
    n, hid = x.shape
    nh = hp["heads"]
    hd = hid // nh
    for lw in w["layers"]:
        h = _layer_norm(x, lw["ln1_w"], lw["ln1_b"], hp["eps"])
        q = (h @ lw["q_w"].T + lw["q_b"]).reshape(n, nh, hd).transpose(1, 0, 2)
        k = (h @ lw["k_w"].T + lw["k_b"]).reshape(n, nh, hd).transpose(1, 0, 2)
        v = (h @ lw["v_w"].T + lw["v_b"]).reshape(n, nh, hd).transpose(1, 0, 2)
        a = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = (a @ v).transpose(1, 0, 2).reshape(n, hid)
        x = x + o @ lw["o_w"].T + lw["o_b"]
        h = _layer_norm(x, lw["ln2_w"], lw["ln2_b"], hp["eps"])
        x = x + _gelu_tanh(h @ lw["fc1_w"].T + lw["fc1_b"]) @ lw["fc2_w"].T + lw["fc2_b"]
    x = _layer_norm(x, w["post_w"], w["post_b"], hp["eps"])
    # Gemma3MultiModalProjector: the [g, g] grid average-pooled with kernel = stride = g / tokens_per_side
    k = g // hp["tokens_per_side"]
    t = hp["tokens_per_side"]
    x = x.reshape(t, k, t, k, hid).mean(axis=(1, 3)).reshape(t * t, hid)
    x = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + hp["eps"]) * w["mm_norm"]
    return x @ w["mm_proj"]


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0] not in ("--hf", "--gguf"):
        raise SystemExit(__doc__)
    w, hp = hf_weights(args[1]) if args[0] == "--hf" else gguf_weights(args[1])
    emb = forward(w, hp, test_image(hp["image_size"]))
    if "--out" in args:
        np.save(args[args.index("--out") + 1], emb)
    print(json.dumps({"shape": list(emb.shape), "rms": float(np.sqrt((emb ** 2).mean()))}))


if __name__ == "__main__":
    main()
