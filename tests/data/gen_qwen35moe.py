#!/usr/bin/env python3
"""A header-only Qwen3.5-397B-A17B checkpoint: the published config and tensor names/shapes, all-zero sparse data.

Writes OUT_DIR with config.json (Qwen3_5MoeForConditionalGeneration: text_config + vision_config), sharded
model-XXXXX-of-YYYYY.safetensors files and model.safetensors.index.json, laid out as transformers stores the model
(model.language_model.*, model.visual.*, lm_head.weight, mtp.*), with the routed experts fused into 3-D tensors
(mlp.experts.gate_up_proj [E, 2 * moe_intermediate, hidden], mlp.experts.down_proj [E, hidden, moe_intermediate]),
the layout `shardforge demo --arch qwen35moe` writes. Written by sparse_checkpoint.py (data regions made with
truncate: the ~800 GB model costs no disk space and reads as zeros). Tokenizer files are copied from
--tokenizer-from (a `shardforge demo --arch qwen35moe` base directory): only sizes matter here.

Sources of the numbers. From the model's published description and configs quoted by several inference projects:
hidden 4096, 60 layers (15 x (3 Gated DeltaNet + 1 full attention)), 32 query / 2 key-value heads of 256, 512
experts (10 routed per token) of width 1024 plus one shared expert of width 1024, linear attention 16 key / 64
value heads of 128, conv kernel 4, vocabulary 248320, rope theta 1e7 with partial rotary factor 0.25, untied
embeddings. ASSUMED (not confirmed against the Hub file): mtp_num_hidden_layers 1, bf16 for every tensor (the Hub
file may keep A_log / norms in f32), the special token ids, and the vision tower's sizes (Qwen3-VL's: depth 27,
width 1152, MLP 4304, patch 16); the vision tower is dropped by the GGUF conversion anyway.

    gen_qwen35moe.py OUT_DIR --tokenizer-from DEMO_BASE [--layers N] [--experts E] [--shard-size BYTES]

Prints the total tensor bytes and the tensor count.
"""

from sparse_checkpoint import sized_main

TEXT = {
    "hidden_size": 4096,
    "num_hidden_layers": 60,
    "num_attention_heads": 32,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "vocab_size": 248320,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "moe_intermediate_size": 1024,
    "shared_expert_intermediate_size": 1024,
    "full_attention_interval": 4,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 64,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4,
    "mtp_num_hidden_layers": 1,
}
VISION = {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304, "num_heads": 16, "in_channels": 3,
          "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": 4096,
          "num_position_embeddings": 2304, "hidden_act": "gelu_pytorch_tanh", "model_type": "qwen3_5_moe"}


def config(layers, experts):
    t = dict(TEXT, num_hidden_layers=layers, num_experts=experts,
             num_experts_per_tok=min(TEXT["num_experts_per_tok"], experts))  # transformers requires top-k <= experts
    t.update({
        "model_type": "qwen3_5_moe_text", "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0,
        "initializer_range": 0.02, "max_position_embeddings": 262144, "rms_norm_eps": 1e-06, "norm_topk_prob": True,
        "router_aux_loss_coef": 0.001, "output_router_logits": False, "mtp_use_dedicated_embeddings": False,
        "layer_types": ["full_attention" if (i + 1) % 4 == 0 else "linear_attention" for i in range(layers)],
        "rope_parameters": {"mrope_interleaved": True, "mrope_section": [11, 11, 10], "rope_type": "default",
                            "rope_theta": 10000000, "partial_rotary_factor": 0.25},
        "bos_token_id": 248044, "eos_token_id": 248046, "dtype": "bfloat16", "use_cache": True,
        "tie_word_embeddings": False,
    })
    return {"architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
            "image_token_id": 248056, "video_token_id": 248057, "vision_start_token_id": 248053,
            "vision_end_token_id": 248054, "tie_word_embeddings": False, "transformers_version": "4.57.0.dev0",
            "text_config": t, "vision_config": VISION}


def attention(p, c):
    h, d = c["hidden_size"], c["head_dim"]
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    return [(p + "self_attn.q_proj.weight", [2 * q, h]),  # query and output gate
            (p + "self_attn.k_proj.weight", [kv, h]), (p + "self_attn.v_proj.weight", [kv, h]),
            (p + "self_attn.o_proj.weight", [h, q]),
            (p + "self_attn.q_norm.weight", [d]), (p + "self_attn.k_norm.weight", [d])]


def linear_attention(p, c):
    h = c["hidden_size"]
    nv = c["linear_num_value_heads"]
    k, v = c["linear_num_key_heads"] * c["linear_key_head_dim"], nv * c["linear_value_head_dim"]
    return [(p + "linear_attn.in_proj_qkv.weight", [2 * k + v, h]), (p + "linear_attn.in_proj_z.weight", [v, h]),
            (p + "linear_attn.in_proj_a.weight", [nv, h]), (p + "linear_attn.in_proj_b.weight", [nv, h]),
            (p + "linear_attn.conv1d.weight", [2 * k + v, 1, c["linear_conv_kernel_dim"]]),
            (p + "linear_attn.A_log", [nv]), (p + "linear_attn.dt_bias", [nv]),
            (p + "linear_attn.norm.weight", [c["linear_value_head_dim"]]),
            (p + "linear_attn.out_proj.weight", [h, v])]


def moe(p, c):
    h, e, i, s = c["hidden_size"], c["num_experts"], c["moe_intermediate_size"], c["shared_expert_intermediate_size"]
    return [(p + "mlp.gate.weight", [e, h]), (p + "mlp.experts.gate_up_proj", [e, 2 * i, h]),
            (p + "mlp.experts.down_proj", [e, h, i]),
            (p + "mlp.shared_expert.gate_proj.weight", [s, h]), (p + "mlp.shared_expert.up_proj.weight", [s, h]),
            (p + "mlp.shared_expert.down_proj.weight", [h, s]), (p + "mlp.shared_expert_gate.weight", [1, h])]


def tensors(c):
    h = c["hidden_size"]
    lm = "model.language_model."
    out = [(lm + "embed_tokens.weight", [c["vocab_size"], h])]
    for b in range(c["num_hidden_layers"]):
        p = f"{lm}layers.{b}."
        mixer = attention if c["layer_types"][b] == "full_attention" else linear_attention
        out += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h])]
        out += mixer(p, c) + moe(p, c)
    out += [(lm + "norm.weight", [h]), ("lm_head.weight", [c["vocab_size"], h])]
    for b in range(c["mtp_num_hidden_layers"]):
        p = f"mtp.layers.{b}."
        out += [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h])]
        out += attention(p, c) + moe(p, c)
    out += [("mtp.fc.weight", [h, 2 * h]), ("mtp.norm.weight", [h]), ("mtp.pre_fc_norm_embedding.weight", [h]),
            ("mtp.pre_fc_norm_hidden.weight", [h])]
    v = VISION
    w, m, pv = v["hidden_size"], v["intermediate_size"], "model.visual."
    out += [(pv + "patch_embed.proj.weight", [w, v["in_channels"], v["temporal_patch_size"], v["patch_size"],
                                               v["patch_size"]]), (pv + "patch_embed.proj.bias", [w]),
            (pv + "pos_embed.weight", [v["num_position_embeddings"], w])]
    for b in range(v["depth"]):
        p = f"{pv}blocks.{b}."
        for n, shape in (("norm1", [w]), ("norm2", [w]), ("attn.qkv", [3 * w, w]), ("attn.proj", [w, w]),
                         ("mlp.linear_fc1", [m, w]), ("mlp.linear_fc2", [w, m])):
            out += [(p + n + ".weight", shape), (p + n + ".bias", shape[:1])]
    merged = w * v["spatial_merge_size"] ** 2
    for n, shape in (("merger.norm", [w]), ("merger.linear_fc1", [merged, merged]),
                     ("merger.linear_fc2", [v["out_hidden_size"], merged])):
        out += [(pv + n + ".weight", shape), (pv + n + ".bias", shape[:1])]
    return out


def build(layers, experts):
    cfg = config(layers, experts)
    return [(n, "BF16", shape) for n, shape in tensors(cfg["text_config"])], cfg


if __name__ == "__main__":
    sized_main(TEXT["num_hidden_layers"], TEXT["num_experts"], build)
