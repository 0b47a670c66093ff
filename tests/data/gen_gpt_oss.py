#!/usr/bin/env python3
"""A header-only gpt-oss-120b checkpoint (GptOssForCausalLM, ~117B parameters, MXFP4 experts): its config and tensor
names/shapes, all-zero sparse data.

Writes OUT_DIR as the Hub release ships the model: each layer's experts as MXFP4 (mlp.experts.gate_up_proj_blocks /
down_proj_blocks U8 [E, rows, cols / 32, 16], their E8M0 *_scales U8 [E, rows, cols / 32], 16-bit *_bias), attention
q/k/v/o_proj with biases and the per-head sinks, the router with its bias, embeddings and lm_head, all BF16 (the
config's modules_to_not_convert). Written by sparse_checkpoint.py: the data regions cost no disk space and read as
zeros (all-zero MXFP4 blocks are zeros). Tokenizer files are copied from --tokenizer-from (a `shardforge demo --arch
gpt-oss-mxfp4` base directory): only sizes matter here.

Sources of the numbers: openai/gpt-oss-120b's published config.json (hidden 2880, 36 layers alternating sliding /
full attention, 64 query / 8 key-value heads of 64, 128 experts of width 2880 with 4 per token, yarn rope factor 32
over 4096, vocabulary 201088). ASSUMED (not checked against the Hub index): the file count and naming (the release
has 15 files named model-0000K-of-00014; save_pretrained's 5 GB sharding is used here).

    gen_gpt_oss.py OUT_DIR --tokenizer-from DEMO_BASE [--layers N] [--experts E] [--shard-size BYTES]

Prints the total tensor bytes and the tensor count.
"""

from sparse_checkpoint import sized_main

CONFIG = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0, "eos_token_id": 200002,
    "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880, "initial_context_length": 4096,
    "initializer_range": 0.02, "intermediate_size": 2880, "max_position_embeddings": 131072, "model_type": "gpt_oss",
    "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 36, "num_key_value_heads": 8,
    "num_local_experts": 128, "output_router_logits": False, "pad_token_id": 199999, "rms_norm_eps": 1e-05,
    "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0, "original_max_position_embeddings": 4096,
                     "rope_type": "yarn", "truncate": False},
    "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
    "tie_word_embeddings": False, "transformers_version": "4.55.0.dev0", "use_cache": True, "vocab_size": 201088,
    "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                       "model.embed_tokens", "lm_head"],
                            "quant_method": "mxfp4"},
}


def tensors(c):
    h, d, v = c["hidden_size"], c["head_dim"], c["vocab_size"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    e, ff = c["num_local_experts"], c["intermediate_size"]
    out = [("model.embed_tokens.weight", "BF16", [v, h])]
    for b in range(c["num_hidden_layers"]):
        p = f"model.layers.{b}."
        out.append((p + "input_layernorm.weight", "BF16", [h]))
        for proj, rows, cols in (("down_proj", h, ff), ("gate_up_proj", 2 * ff, h)):
            out += [(p + f"mlp.experts.{proj}_blocks", "U8", [e, rows, cols // 32, 16]),
                    (p + f"mlp.experts.{proj}_bias", "BF16", [e, rows]),
                    (p + f"mlp.experts.{proj}_scales", "U8", [e, rows, cols // 32])]
        out += [(p + "mlp.router.bias", "BF16", [e]), (p + "mlp.router.weight", "BF16", [e, h]),
                (p + "post_attention_layernorm.weight", "BF16", [h])]
        for proj, rows, cols in (("k_proj", kv, h), ("o_proj", h, q), ("q_proj", q, h), ("v_proj", kv, h)):
            out += [(p + f"self_attn.{proj}.bias", "BF16", [rows]), (p + f"self_attn.{proj}.weight", "BF16", [rows, cols])]
        out.append((p + "self_attn.sinks", "BF16", [c["num_attention_heads"]]))
    return out + [("model.norm.weight", "BF16", [h]), ("lm_head.weight", "BF16", [v, h])]


def build(layers, experts):
    cfg = dict(CONFIG, num_hidden_layers=layers, num_local_experts=experts)
    return tensors(cfg), cfg


if __name__ == "__main__":
    sized_main(CONFIG["num_hidden_layers"], CONFIG["num_local_experts"], build)
