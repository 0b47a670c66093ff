#!/usr/bin/env python3
"""A header-only Qwen3-235B-A22B checkpoint and LoRA: the published config and tensor names/shapes, all-zero data.

Writes OUT_DIR/base with config.json (Qwen3MoeForCausalLM), sharded model-XXXXX-of-YYYYY.safetensors files and
model.safetensors.index.json, with the routed experts as per-expert 2-D tensors (mlp.experts.E.{gate,up,down}_proj),
as transformers stores the model; and OUT_DIR/adapter, a PEFT LoRA (r 8, bf16) on every linear layer of the decoder:
q/k/v/o_proj and every expert's gate/up/down_proj. Written by sparse_checkpoint.py: the data regions cost no disk
space and read as zeros. Tokenizer files are copied from --tokenizer-from (a `shardforge demo --arch qwen3moe` base
directory): only sizes matter here.

Sources of the numbers: the model's published config.json as quoted by several inference projects: hidden 4096,
94 layers, 64 query / 4 key-value heads of 128, 128 experts (8 routed per token) of width 1536, vocabulary 151936,
untied embeddings, rope theta 1e6. ASSUMED (not confirmed against the Hub file): 118 files of about equal bytes.

    gen_qwen3moe.py OUT_DIR --tokenizer-from DEMO_BASE [--layers N] [--experts E] [--shards N]

Prints the base's total tensor bytes and tensor count.
"""
import argparse
import json
import os

from sparse_checkpoint import shard_by_count, write_checkpoint, write_shard

CONFIG = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "attention_bias": False,
    "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645, "decoder_sparse_step": 1,
    "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 94, "mlp_only_layers": [],
    "moe_intermediate_size": 1536, "norm_topk_prob": True, "num_attention_heads": 64, "num_experts": 128,
    "num_experts_per_tok": 8, "num_hidden_layers": 94, "num_key_value_heads": 4, "output_router_logits": False,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936,
}


def linears(c):
    """(module path, [out, in]) of every linear layer of the decoder."""
    h, d, e, i = c["hidden_size"], c["head_dim"], c["num_experts"], c["moe_intermediate_size"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    out = []
    for b in range(c["num_hidden_layers"]):
        p = f"model.layers.{b}."
        out += [(p + "self_attn.q_proj", [q, h]), (p + "self_attn.k_proj", [kv, h]),
                (p + "self_attn.v_proj", [kv, h]), (p + "self_attn.o_proj", [h, q])]
        for x in range(e):
            out += [(f"{p}mlp.experts.{x}.gate_proj", [i, h]), (f"{p}mlp.experts.{x}.up_proj", [i, h]),
                    (f"{p}mlp.experts.{x}.down_proj", [h, i])]
    return out


def tensors(c):
    h, d, e = c["hidden_size"], c["head_dim"], c["num_experts"]
    lin = dict(linears(c))
    out = [("model.embed_tokens.weight", [c["vocab_size"], h])]
    for b in range(c["num_hidden_layers"]):
        p = f"model.layers.{b}."
        out += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h])]
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out.append((f"{p}self_attn.{n}.weight", lin[f"{p}self_attn.{n}"]))
        out += [(p + "self_attn.q_norm.weight", [d]), (p + "self_attn.k_norm.weight", [d]),
                (p + "mlp.gate.weight", [e, h])]
        for x in range(e):
            for n in ("gate_proj", "up_proj", "down_proj"):
                out.append((f"{p}mlp.experts.{x}.{n}.weight", lin[f"{p}mlp.experts.{x}.{n}"]))
    out += [("model.norm.weight", [h]), ("lm_head.weight", [c["vocab_size"], h])]
    return out


def write_adapter(out, c, r=8):
    os.makedirs(out, exist_ok=True)
    ts = []
    for m, (o, i) in linears(c):
        ts += [(f"base_model.model.{m}.lora_A.weight", "BF16", [r, i]),
               (f"base_model.model.{m}.lora_B.weight", "BF16", [o, r])]
    write_shard(os.path.join(out, "adapter_model.safetensors"), ts)
    cfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 16, "lora_dropout": 0.0,
           "bias": "none", "fan_in_fan_out": False, "use_dora": False, "use_rslora": False,
           "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None, "layers_to_transform": None}
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--layers", type=int, default=CONFIG["num_hidden_layers"])
    ap.add_argument("--experts", type=int, default=CONFIG["num_experts"])
    ap.add_argument("--shards", type=int, default=118)
    a = ap.parse_args()
    cfg = dict(CONFIG, num_hidden_layers=a.layers, max_window_layers=a.layers, num_experts=a.experts,
               num_experts_per_tok=min(CONFIG["num_experts_per_tok"], a.experts))
    ts = [(n, "BF16", shape) for n, shape in tensors(cfg)]
    total, count = write_checkpoint(os.path.join(a.out, "base"), ts, cfg, a.tokenizer_from,
                                    shard_by_count(ts, a.shards))
    write_adapter(os.path.join(a.out, "adapter"), cfg)
    print(total, count)


if __name__ == "__main__":
    main()
