#!/usr/bin/env python3
"""A header-only DeepSeek-V3 (671B) or Kimi-K2 (1T) checkpoint: the published config and tensor names/shapes, FP8
weights, all-zero sparse data.

Writes OUT_DIR as the Hub releases ship these models (DeepseekV3ForCausalLM): every linear weight of the layers
F8_E4M3 with its 128x128-block F32 weight_scale_inv, embeddings, norms, router and lm_head BF16, the routing bias
(mlp.gate.e_score_correction_bias) F32, routed experts as per-expert 2-D tensors (mlp.experts.E.{gate,up,down}_proj),
one shared expert, the first `first_k_dense_replace` layers dense, and DeepSeek-V3's multi-token-prediction layer
appended as model.layers.61 (embed_tokens, enorm, hnorm, BF16 eh_proj, shared_head). Sharded into the release's file
count, about equal bytes per file. Written by sparse_checkpoint.py: the data regions cost no disk space and read as
zeros. Tokenizer files are copied from --tokenizer-from (a `shardforge demo --arch deepseek2` base directory): only
sizes matter here, and Kimi-K2's own tiktoken.model is refused by shardforge (docs/formats.md, deepseek2).

Sources of the numbers: the models' published config.json files (deepseek-ai/DeepSeek-V3, moonshotai/Kimi-K2-Instruct)
as quoted by several inference projects, and DeepSeek-V3's index: 163 files named model-00001-of-000163.safetensors,
total_size about 688.6 GB. ASSUMED (not confirmed against the Hub files): Kimi-K2's 61 files and their naming
(model-1-of-61.safetensors), its bos/eos ids.

    gen_deepseek2.py OUT_DIR --family deepseek-v3|kimi-k2 --tokenizer-from DEMO_BASE
                     [--layers N] [--dense N] [--experts E] [--shards N]

Prints the total tensor bytes and the tensor count.
"""
import argparse
import copy

from sparse_checkpoint import shard_by_count, write_checkpoint

COMMON = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "attention_bias": False, "attention_dropout": 0.0, "aux_loss_alpha": 0.001, "ep_size": 1, "hidden_act": "silu",
    "hidden_size": 7168, "initializer_range": 0.02, "intermediate_size": 18432, "kv_lora_rank": 512,
    "moe_intermediate_size": 2048, "moe_layer_freq": 1, "n_shared_experts": 1, "norm_topk_prob": True,
    "num_experts_per_tok": 8, "num_hidden_layers": 61, "pretraining_tp": 1, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "rms_norm_eps": 1e-06,
    "scoring_func": "sigmoid", "seq_aux": True, "tie_word_embeddings": False, "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16", "use_cache": True,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
}
FAMILIES = {
    "deepseek-v3": (dict(COMMON, **{
        "model_type": "deepseek_v3", "bos_token_id": 0, "eos_token_id": 1, "first_k_dense_replace": 3,
        "max_position_embeddings": 163840, "n_group": 8, "n_routed_experts": 256, "num_attention_heads": 128,
        "num_key_value_heads": 128, "num_nextn_predict_layers": 1, "rope_theta": 10000, "routed_scaling_factor": 2.5,
        "topk_group": 4, "vocab_size": 129280, "transformers_version": "4.33.1",
        "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                         "original_max_position_embeddings": 4096, "type": "yarn"}}),
        163, "model-{k:05d}-of-{n:06d}.safetensors"),
    "kimi-k2": (dict(COMMON, **{
        "model_type": "kimi_k2", "bos_token_id": 163584, "eos_token_id": 163585, "first_k_dense_replace": 1,
        "max_position_embeddings": 131072, "n_group": 1, "n_routed_experts": 384, "num_attention_heads": 64,
        "num_key_value_heads": 64, "num_nextn_predict_layers": 0, "rope_theta": 50000.0,
        "routed_scaling_factor": 2.827, "topk_group": 1, "vocab_size": 163840, "transformers_version": "4.48.3",
        "rope_scaling": {"beta_fast": 1.0, "beta_slow": 1.0, "factor": 32.0, "mscale": 1.0, "mscale_all_dim": 1.0,
                         "original_max_position_embeddings": 4096, "type": "yarn"}}),
        61, "model-{k}-of-{n}.safetensors"),
}


def tensors(c):
    h, v, e = c["hidden_size"], c["vocab_size"], c["n_routed_experts"]
    heads, nope, rope, vd = c["num_attention_heads"], c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
    qr, kvr, ff, mi = c["q_lora_rank"], c["kv_lora_rank"], c["intermediate_size"], c["moe_intermediate_size"]
    out = []

    def fp8(name, rows, cols):  # a block-scaled FP8 linear weight (quantization_config.weight_block_size 128x128)
        out.append((name + ".weight", "F8_E4M3", [rows, cols]))
        out.append((name + ".weight_scale_inv", "F32", [(rows + 127) // 128, (cols + 127) // 128]))

    def bf16(name, shape):
        out.append((name, "BF16", shape))

    def mlp(p, width):
        fp8(p + "gate_proj", width, h)
        fp8(p + "up_proj", width, h)
        fp8(p + "down_proj", h, width)

    bf16("model.embed_tokens.weight", [v, h])
    n_layers = c["num_hidden_layers"]
    for b in range(n_layers + c["num_nextn_predict_layers"]):
        p = f"model.layers.{b}."
        a = p + "self_attn."
        bf16(p + "input_layernorm.weight", [h])
        fp8(a + "q_a_proj", qr, h)
        bf16(a + "q_a_layernorm.weight", [qr])
        fp8(a + "q_b_proj", heads * (nope + rope), qr)
        fp8(a + "kv_a_proj_with_mqa", kvr + rope, h)
        bf16(a + "kv_a_layernorm.weight", [kvr])
        fp8(a + "kv_b_proj", heads * (nope + vd), kvr)
        fp8(a + "o_proj", h, heads * vd)
        bf16(p + "post_attention_layernorm.weight", [h])
        if b < c["first_k_dense_replace"]:
            mlp(p + "mlp.", ff)
        else:
            bf16(p + "mlp.gate.weight", [e, h])
            out.append((p + "mlp.gate.e_score_correction_bias", "F32", [e]))
            for x in range(e):
                mlp(f"{p}mlp.experts.{x}.", mi)
            mlp(p + "mlp.shared_experts.", mi * c["n_shared_experts"])
        if b >= n_layers:  # the MTP layer's own tensors
            bf16(p + "embed_tokens.weight", [v, h])
            bf16(p + "enorm.weight", [h])
            bf16(p + "hnorm.weight", [h])
            bf16(p + "eh_proj.weight", [h, 2 * h])
            bf16(p + "shared_head.norm.weight", [h])
            bf16(p + "shared_head.head.weight", [v, h])
    bf16("model.norm.weight", [h])
    bf16("lm_head.weight", [v, h])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--family", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--layers", type=int, help="num_hidden_layers (default: the model's)")
    ap.add_argument("--dense", type=int, help="first_k_dense_replace (default: the model's)")
    ap.add_argument("--experts", type=int, help="n_routed_experts (default: the model's)")
    ap.add_argument("--shards", type=int, help="safetensors files (default: the release's)")
    a = ap.parse_args()
    base, n_shards, shard_name = FAMILIES[a.family]
    cfg = copy.deepcopy(base)
    for key, val in (("num_hidden_layers", a.layers), ("first_k_dense_replace", a.dense),
                     ("n_routed_experts", a.experts)):
        if val is not None:
            cfg[key] = val
    ts = tensors(cfg)
    total, count = write_checkpoint(a.out, ts, cfg, a.tokenizer_from, shard_by_count(ts, a.shards or n_shards),
                                    shard_name)
    print(total, count)


if __name__ == "__main__":
    main()
