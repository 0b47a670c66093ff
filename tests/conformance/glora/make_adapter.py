#!/usr/bin/python3
"""Writes a deterministic PEFT LoRA adapter for a base HF model directory (tests of --format gguf-lora).

    /usr/bin/python3 make_adapter.py BASE_DIR OUT_DIR KIND [--seed N]

KIND:
  rslora    r=16, lora_alpha=8, use_rslora (PEFT scale alpha/sqrt(r) = 2, llama.cpp's alpha/r would give 0.5)
  patterns  r=8, lora_alpha=16, rank_pattern {q_proj: 4, layers.1.mlp.down_proj: 12},
            alpha_pattern {v_proj: 32, layers.2.self_attn.o_proj: 3}
  embed     r=8, lora_alpha=16 on the projections plus embed_tokens (lora_embedding_A (4, vocab) /
            lora_embedding_B (hidden, 4) via rank_pattern, alpha_pattern {embed_tokens: 12})
  dora      plain r=8 adapter with use_dora and lora_magnitude_vector tensors (must be refused)
  experts   rsLoRA r=8, lora_alpha=16 on every MoE expert's 2-D weights only (mlp.experts.N.*_proj,
            block_sparse_moe.experts.N.w1/w2/w3), so that the whole LoRA effect comes through the stacked experts
Targets: every 2-D *_proj weight of the base's decoder layers (q/k/v/o, gate/up/down; phi3: qkv/o/gate_up/down;
GLM-4.5's mlp.shared_experts.*). Layers from num_hidden_layers on (GLM-4.5's MTP layer model.layers.{n_layer}, which
transformers does not build, so PEFT never wraps it) are left out.
gemma4 also per_layer_input_gate and per_layer_projection; gemma3n (its text model under model.language_model.) those
and LAuReL's laurel.linear_left / linear_right, not the AltUp router and coefficients llama.cpp applies no LoRA to).
deepseek_v3: o_proj, the dense MLP and the shared experts, not the MLA projections llama.cpp applies no LoRA to;
minimax_m2: also the router block_sparse_moe.gate, which llama.cpp applies LoRA to).
Values: numpy default_rng(seed), F32, A ~ N(0, 1/in), B ~ N(0, 0.05^2) so that the LoRA visibly moves logits.
"""
import argparse
import json
import os
import re
import struct

import numpy as np


def st_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8"))


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors:
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def pattern(pat, module, default):
    for k, v in pat.items():
        if re.fullmatch(r"(.*\.)?(" + k + r")", module):
            return v
    return default


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("kind", choices=["rslora", "patterns", "embed", "dora", "experts"])
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()

    shapes = {}
    for fn in sorted(os.listdir(a.base)):
        if fn.endswith(".safetensors"):
            for k, v in st_header(os.path.join(a.base, fn)).items():
                if k != "__metadata__":
                    shapes[k] = v["shape"]
    with open(os.path.join(a.base, "config.json")) as f:
        config = json.load(f)
    n_layer = {**config, **(config.get("text_config") or {})}["num_hidden_layers"]

    def decoder_layer(k):
        m = re.search(r"\.layers\.(\d+)\.", k)
        return m is not None and int(m.group(1)) < n_layer

    targets = sorted(k[: -len(".weight")] for k, s in shapes.items()
                     if re.search(r"^(language_model\.)?model\.(language_model\.)?layers\.\d+\.((self_attn|mlp|"
                               r"mlp\.shared_experts|linear_attn|feed_forward|feed_forward\.shared_expert)\."
                               r"(\w+_proj|in_proj_\w+)|per_layer_input_gate|per_layer_projection|"
                               r"laurel\.linear_left|laurel\.linear_right)\.weight$", k)
                     and len(s) == 2 and decoder_layer(k))  # decoder layers only (not a Qwen3.5 mtp.* nor a vision tower), linear attention
                                       # included; Mistral3 and Llama 4 store their text model under language_model.;
                                       # Llama 4: feed_forward.* (dense MLP) and feed_forward.shared_expert.*
    with open(os.path.join(a.base, "config.json")) as f:
        base_cfg = json.load(f)
    model_type = base_cfg.get("model_type")
    if model_type == "deepseek_v3":
        # llama.cpp applies no LoRA to deepseek2's MLA projections (src/models/deepseek2.cpp), so shardforge refuses
        # them in a GGUF LoRA: o_proj, the dense MLP and the shared experts (matched above) here.
        targets = [t for t in targets if not re.search(r"\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj)$", t)]
        # not the MTP layer (model.layers.{num_hidden_layers}), which the conversion drops
        mtp = re.compile(r"^model\.layers\.(\d+)\.")
        targets = [t for t in targets if int(mtp.match(t).group(1)) < base_cfg["num_hidden_layers"]]
    if model_type == "minimax_m2":
        # MiniMax-M2's router is an nn.Linear (block_sparse_moe.gate) that llama.cpp's build_moe_ffn multiplies with
        # LoRA: wrapped too
        targets = sorted(targets + [k[: -len(".weight")] for k, s in shapes.items() if len(s) == 2 and
                                    re.search(r"^model\.layers\.\d+\.block_sparse_moe\.gate\.weight$", k)])
    if a.kind == "experts":
        targets = sorted(k[: -len(".weight")] for k, s in shapes.items() if len(s) == 2 and
                          re.search(r"^(language_model\.)?model\.layers\.\d+\.(mlp|block_sparse_moe)\.experts\.\d+\."
                                    r"(\w+_proj|w[123])\.weight$", k)
                          and decoder_layer(k))  # decoder layers (not Qwen3-Next's mtp.*, not GLM's MTP layer)
    names = sorted({t.rsplit(".", 1)[1] for t in targets})

    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": os.path.abspath(a.base),
           "r": 8, "lora_alpha": 16, "use_rslora": False, "use_dora": False, "fan_in_fan_out": False,
           "bias": "none", "lora_dropout": 0.0, "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {},
           "target_modules": names, "init_lora_weights": True, "inference_mode": True}
    if a.kind == "rslora":
        cfg.update(r=16, lora_alpha=8, use_rslora=True)
    elif a.kind == "patterns":
        cfg["rank_pattern"] = {"q_proj": 4, "layers.1.mlp.down_proj": 12}
        cfg["alpha_pattern"] = {"v_proj": 32, "layers.2.self_attn.o_proj": 3}
    elif a.kind == "embed":
        cfg["rank_pattern"] = {"embed_tokens": 4}
        cfg["alpha_pattern"] = {"embed_tokens": 12}
        cfg["target_modules"] = names + ["embed_tokens"]
    elif a.kind == "experts":
        cfg.update(use_rslora=True)
    else:
        cfg["use_dora"] = True

    rng = np.random.default_rng(a.seed)
    tensors = []
    for t in targets:
        out_dim, in_dim = shapes[t + ".weight"]
        r = pattern(cfg["rank_pattern"], t, cfg["r"])
        A = rng.standard_normal((r, in_dim)) / np.sqrt(in_dim)
        B = rng.standard_normal((out_dim, r)) * 0.05
        key = "base_model.model." + t
        tensors.append((key + ".lora_A.weight", A))
        tensors.append((key + ".lora_B.weight", B))
        if a.kind == "dora":
            tensors.append((key + ".lora_magnitude_vector", np.ones(out_dim)))
    if a.kind == "embed":
        emb = next(k for k in shapes if k.endswith("embed_tokens.weight"))
        vocab, hidden = shapes[emb]
        key = "base_model.model." + emb[: -len(".weight")]
        tensors.append((key + ".lora_embedding_A", rng.standard_normal((4, vocab))))
        tensors.append((key + ".lora_embedding_B", rng.standard_normal((hidden, 4)) * 0.05))
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(a.out, "adapter_model.safetensors"), tensors)


if __name__ == "__main__":
    main()
