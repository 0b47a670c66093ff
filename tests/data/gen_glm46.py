#!/usr/bin/env python3
"""A header-only GLM-4.6 checkpoint (Glm4MoeForCausalLM, ~355B parameters): its config and tensor names/shapes,
all-zero sparse data.

Writes OUT_DIR with config.json, sharded model-XXXXX-of-YYYYY.safetensors files (tests/data/sparse_checkpoint.py:
data regions made with truncate, so the ~710 GB model costs no disk space and reads as zeros) and model.safetensors.index.json, in the Hub layout: per
expert mlp.experts.N.{gate,up,down}_proj, the router mlp.gate.weight with its F32 e_score_correction_bias, the shared
expert mlp.shared_experts.*, three dense leading layers, and the MTP layer model.layers.92.* (a MoE decoder layer plus
eh_proj, enorm, hnorm and shared_head.norm). Tokenizer files are copied from --tokenizer-from (a
`shardforge demo --arch glm4moe` base directory): only sizes matter here.

Sources of the numbers: GLM-4.6's published config.json as quoted by inference projects (hidden 5120, 92 layers,
96 query / 8 key-value heads of 128, q/k norms and attention biases, 160 routed experts of width 1536 with 8 per
token plus one shared, first_k_dense_replace 3 with a dense width of 12288, vocabulary 151552, partial rotary 0.5,
one MTP layer). ASSUMED (not checked against the Hub index): the MTP layer without its own embed_tokens and
shared_head.head (GLM-4.5's has them), bf16 everywhere but the router bias.

    gen_glm46.py OUT_DIR --tokenizer-from DEMO_BASE [--layers N] [--experts E] [--shard-size BYTES]

Prints the total tensor bytes and the tensor count.
"""

from sparse_checkpoint import sized_main

CONFIG = {
    "architectures": ["Glm4MoeForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": [151329, 151336, 151338], "first_k_dense_replace": 3, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 5120, "initializer_range": 0.02, "intermediate_size": 12288, "max_position_embeddings": 202752,
    "model_type": "glm4_moe", "moe_intermediate_size": 1536, "n_group": 1, "n_routed_experts": 160,
    "n_shared_experts": 1, "norm_topk_prob": True, "num_attention_heads": 96, "num_experts_per_tok": 8,
    "num_hidden_layers": 92, "num_key_value_heads": 8, "num_nextn_predict_layers": 1, "pad_token_id": 151329,
    "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 1000000,
    "routed_scaling_factor": 2.5, "tie_word_embeddings": False, "topk_group": 1, "torch_dtype": "bfloat16",
    "transformers_version": "4.54.0", "use_cache": True, "use_qk_norm": True, "vocab_size": 151552,
}


def layer(b, c, dense):
    h, d, p = c["hidden_size"], c["head_dim"], f"model.layers.{b}."
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    out = [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h])]
    for n, rows in (("q_proj", q), ("k_proj", kv), ("v_proj", kv)):
        out += [(p + f"self_attn.{n}.weight", [rows, h]), (p + f"self_attn.{n}.bias", [rows])]
    out += [(p + "self_attn.o_proj.weight", [h, q]), (p + "self_attn.q_norm.weight", [d]),
            (p + "self_attn.k_norm.weight", [d])]

    def mlp(m, width):
        return [(m + "gate_proj.weight", [width, h]), (m + "up_proj.weight", [width, h]),
                (m + "down_proj.weight", [h, width])]

    if dense:
        return out + mlp(p + "mlp.", c["intermediate_size"])
    e, w = c["n_routed_experts"], c["moe_intermediate_size"]
    out += [(p + "mlp.gate.weight", [e, h]), (p + "mlp.gate.e_score_correction_bias", [e])]
    for x in range(e):
        out += mlp(p + f"mlp.experts.{x}.", w)
    return out + mlp(p + "mlp.shared_experts.", w * c["n_shared_experts"])


def tensors(c):
    h, n = c["hidden_size"], c["num_hidden_layers"]
    out = [("model.embed_tokens.weight", [c["vocab_size"], h])]
    for b in range(n + c["num_nextn_predict_layers"]):
        out += layer(b, c, b < c["first_k_dense_replace"])
        if b >= n:  # the MTP layer's own tensors
            p = f"model.layers.{b}."
            out += [(p + "eh_proj.weight", [h, 2 * h]), (p + "enorm.weight", [h]), (p + "hnorm.weight", [h]),
                    (p + "shared_head.norm.weight", [h])]
    return out + [("model.norm.weight", [h]), ("lm_head.weight", [c["vocab_size"], h])]


def with_dtypes(ts):
    """(name, dtype, shape): bf16 everywhere but the router bias."""
    return [(n, "F32" if n.endswith("e_score_correction_bias") else "BF16", shape) for n, shape in ts]


def build(layers, experts):
    cfg = dict(CONFIG, num_hidden_layers=layers, n_routed_experts=experts,
               first_k_dense_replace=min(CONFIG["first_k_dense_replace"], layers - 1))
    return with_dtypes(tensors(cfg)), cfg


if __name__ == "__main__":
    sized_main(CONFIG["num_hidden_layers"], CONFIG["n_routed_experts"], build)
