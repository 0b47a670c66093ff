#!/usr/bin/env python3
"""A header-only MiniMax-M2 checkpoint (MiniMaxM2ForCausalLM, ~230B parameters, FP8): its config and tensor
names/shapes, all-zero sparse data.

Writes OUT_DIR as the Hub release ships the model: attention q/k/v/o_proj and every expert's
block_sparse_moe.experts.N.w1/w2/w3 F8_E4M3 with their 128x128-block F32 weight_scale_inv, q_norm / k_norm over all
heads ([48 x 128], [8 x 128]), the router block_sparse_moe.gate and lm_head and embeddings BF16 (the config's
modules_to_not_convert), the routing bias block_sparse_moe.e_score_correction_bias F32; 62 layers, all MoE. Written
by sparse_checkpoint.py (save_pretrained's 5 GB sharding): the data regions cost no disk space and read as zeros.
Tokenizer files are copied from --tokenizer-from (a `shardforge demo --arch minimax-m2` base directory): only sizes
matter here.

Sources of the numbers: MiniMax-M2's published config.json as quoted by inference projects (hidden 3072, 62
layers, 48 query / 8 key-value heads of 128, rotary_dim 64, 256 experts of width 1536 with 8 per token, sigmoid
scoring with the routing bias, vocabulary 200064, FP8 e4m3 in 128x128 blocks). ASSUMED (not checked against the Hub
index): the file count and naming (save_pretrained's 5 GB shards), no MTP tensors in the files.

    gen_minimax_m2.py OUT_DIR --tokenizer-from DEMO_BASE [--layers N] [--experts E] [--shard-size BYTES]

Prints the total tensor bytes and the tensor count.
"""

from sparse_checkpoint import sized_main

CONFIG = {
    "architectures": ["MiniMaxM2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": None, "eos_token_id": None,
    "head_dim": 128, "hidden_act": "silu", "hidden_size": 3072, "initializer_range": 0.02, "intermediate_size": 1536,
    "max_position_embeddings": 196608, "model_type": "minimax_m2", "num_attention_heads": 48,
    "num_experts_per_tok": 8, "num_hidden_layers": 62, "num_key_value_heads": 8, "num_local_experts": 256,
    "output_router_logits": False, "qk_norm_type": "per_layer", "rms_norm_eps": 1e-06, "rope_theta": 5000000,
    "rotary_dim": 64, "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0, "scoring_func": "sigmoid",
    "shared_intermediate_size": 0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
    "use_mtp": True, "num_mtp_modules": 3, "use_qk_norm": True, "use_routing_bias": True, "vocab_size": 200064,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "float8_e4m3fn", "quant_method": "fp8",
                            "weight_block_size": [128, 128],
                            "modules_to_not_convert": ["gate", "e_score_correction_bias", "lm_head"]},
}


def tensors(c):
    h, d, v = c["hidden_size"], c["head_dim"], c["vocab_size"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    e, w = c["num_local_experts"], c["intermediate_size"]
    out = []

    def fp8(name, rows, cols):  # a block-scaled FP8 linear weight (quantization_config.weight_block_size 128x128)
        out.append((name + ".weight", "F8_E4M3", [rows, cols]))
        out.append((name + ".weight_scale_inv", "F32", [(rows + 127) // 128, (cols + 127) // 128]))

    out.append(("model.embed_tokens.weight", "BF16", [v, h]))
    for b in range(c["num_hidden_layers"]):
        p = f"model.layers.{b}."
        out += [(p + "input_layernorm.weight", "BF16", [h]), (p + "post_attention_layernorm.weight", "BF16", [h])]
        fp8(p + "self_attn.q_proj", q, h)
        fp8(p + "self_attn.k_proj", kv, h)
        fp8(p + "self_attn.v_proj", kv, h)
        fp8(p + "self_attn.o_proj", h, q)
        out += [(p + "self_attn.q_norm.weight", "BF16", [q]), (p + "self_attn.k_norm.weight", "BF16", [kv])]
        out += [(p + "block_sparse_moe.gate.weight", "BF16", [e, h]),
                (p + "block_sparse_moe.e_score_correction_bias", "F32", [e])]
        for x in range(e):
            fp8(p + f"block_sparse_moe.experts.{x}.w1", w, h)
            fp8(p + f"block_sparse_moe.experts.{x}.w2", h, w)
            fp8(p + f"block_sparse_moe.experts.{x}.w3", w, h)
    return out + [("model.norm.weight", "BF16", [h]), ("lm_head.weight", "BF16", [v, h])]


def build(layers, experts):
    cfg = dict(CONFIG, num_hidden_layers=layers, num_local_experts=experts)
    return tensors(cfg), cfg


if __name__ == "__main__":
    sized_main(CONFIG["num_hidden_layers"], CONFIG["num_local_experts"], build)
