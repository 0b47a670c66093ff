#!/usr/bin/env python3
"""A header-only Llama 4 Maverick checkpoint (Llama4ForConditionalGeneration, ~400B parameters): its config and
tensor names/shapes, all-zero sparse data.

Writes OUT_DIR with config.json, sharded model-XXXXX-of-YYYYY.safetensors files (tests/data/sparse_checkpoint.py:
data regions made with truncate, so the ~800 GB model costs no disk space and reads as zeros) and
model.safetensors.index.json, in the checkpoint's layout: the text model under language_model.model.* /
language_model.lm_head.weight, MoE on every other layer (interleave_moe_layer_step 2: layers 1, 3, ..., 47) with the
fused experts feed_forward.experts.gate_up_proj [128, 5120, 16384] and down_proj [128, 8192, 5120], the router and
the shared expert; dense layers with feed_forward.{gate,up,down}_proj of intermediate_size_mlp; the vision tower
vision_model.* and multi_modal_projector.linear_1 beside it (not converted to the text GGUF). Tokenizer files are
copied from --tokenizer-from (a `shardforge demo --arch llama4` base directory): only sizes matter here.

Sources of the numbers: Llama-4-Maverick-17B-128E's published config.json (text: hidden 5120, 48 layers, 40 query /
8 key-value heads of 128, 128 experts of width 8192 with 1 per token plus a shared one, dense width 16384, vocabulary
202048, rope_theta 500000 without scaling, no QK norm; vision: hidden 1408, 34 layers, width 5632, patch 14, image
336, output 4096). ASSUMED (not checked against the Hub index): the vision tower's tensor list as transformers'
modeling_llama4 defines it, bf16 everywhere, shards of save_pretrained's default 5 GB.

    gen_llama4.py OUT_DIR --tokenizer-from DEMO_BASE [--layers N] [--experts E] [--shard-size BYTES]

Prints the total tensor bytes and the tensor count.
"""

from sparse_checkpoint import sized_main

TEXT = {
    "attention_bias": False, "attention_chunk_size": 8192, "attention_dropout": 0.0, "attn_scale": 0.1,
    "attn_temperature_tuning": True, "bos_token_id": 200000, "eos_token_id": [200001, 200007, 200008],
    "floor_scale": 8192, "for_llm_compressor": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 5120,
    "initializer_range": 0.02, "interleave_moe_layer_step": 2, "intermediate_size": 8192,
    "intermediate_size_mlp": 16384, "max_position_embeddings": 1048576, "model_type": "llama4_text",
    "no_rope_layers": [], "num_attention_heads": 40, "num_experts_per_tok": 1, "num_hidden_layers": 48,
    "num_key_value_heads": 8, "num_local_experts": 128, "output_router_logits": False, "pad_token_id": 200018,
    "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0, "router_aux_loss_coef": 0.001,
    "router_jitter_noise": 0.0, "torch_dtype": "bfloat16", "use_cache": True, "use_qk_norm": False,
    "vocab_size": 202048,
}
VISION = {
    "attention_dropout": 0.0, "hidden_act": "gelu", "hidden_size": 1408, "image_size": 336,
    "initializer_range": 0.02, "intermediate_layers_indices": [], "intermediate_size": 5632,
    "model_type": "llama4_vision_model", "multi_modal_projector_bias": False, "norm_eps": 1e-05,
    "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 34, "patch_size": 14,
    "pixel_shuffle_ratio": 0.5, "projector_dropout": 0.0, "projector_input_dim": 4096, "projector_output_dim": 4096,
    "rope_theta": 10000, "vision_feature_layer": -1, "vision_feature_select_strategy": "default",
    "vision_output_dim": 4096,
}


def text_layer(b, c):
    h, d, p = c["hidden_size"], c["head_dim"], f"language_model.model.layers.{b}."
    q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
    out = [(p + "input_layernorm.weight", [h]), (p + "post_attention_layernorm.weight", [h]),
           (p + "self_attn.q_proj.weight", [q, h]), (p + "self_attn.k_proj.weight", [kv, h]),
           (p + "self_attn.v_proj.weight", [kv, h]), (p + "self_attn.o_proj.weight", [h, q])]
    f = p + "feed_forward."

    def mlp(m, width):
        return [(m + "gate_proj.weight", [width, h]), (m + "up_proj.weight", [width, h]),
                (m + "down_proj.weight", [h, width])]

    if (b + 1) % c["interleave_moe_layer_step"] != 0:
        return out + mlp(f, c["intermediate_size_mlp"])
    e, w = c["num_local_experts"], c["intermediate_size"]
    out += [(f + "experts.gate_up_proj", [e, h, 2 * w]), (f + "experts.down_proj", [e, w, h]),
            (f + "router.weight", [e, h])]
    return out + mlp(f + "shared_expert.", w)


def vision(v, text_hidden):
    h, w, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    n_patches = (v["image_size"] // p) ** 2
    out = [("vision_model.class_embedding", [h]), ("vision_model.positional_embedding_vlm", [n_patches + 1, h]),
           ("vision_model.patch_embedding.linear.weight", [h, 3 * p * p])]
    for n in ("layernorm_pre", "layernorm_post"):
        out += [(f"vision_model.{n}.weight", [h]), (f"vision_model.{n}.bias", [h])]
    for b in range(v["num_hidden_layers"]):
        lp = f"vision_model.model.layers.{b}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out += [(lp + f"self_attn.{n}.weight", [h, h]), (lp + f"self_attn.{n}.bias", [h])]
        out += [(lp + "mlp.fc1.weight", [w, h]), (lp + "mlp.fc1.bias", [w]), (lp + "mlp.fc2.weight", [h, w]),
                (lp + "mlp.fc2.bias", [h])]
        for n in ("input_layernorm", "post_attention_layernorm"):
            out += [(lp + f"{n}.weight", [h]), (lp + f"{n}.bias", [h])]
    shuffled = int(h / (v["pixel_shuffle_ratio"] ** 2))
    out += [("vision_model.vision_adapter.mlp.fc1.weight", [v["projector_input_dim"], shuffled]),
            ("vision_model.vision_adapter.mlp.fc2.weight", [v["projector_output_dim"], v["projector_input_dim"]]),
            ("multi_modal_projector.linear_1.weight", [text_hidden, v["vision_output_dim"]])]
    return out


def tensors(c):
    h = c["hidden_size"]
    out = vision(VISION, h) + [("language_model.model.embed_tokens.weight", [c["vocab_size"], h])]
    for b in range(c["num_hidden_layers"]):
        out += text_layer(b, c)
    return out + [("language_model.model.norm.weight", [h]), ("language_model.lm_head.weight", [c["vocab_size"], h])]


def build(layers, experts):
    text = dict(TEXT, num_hidden_layers=layers, num_local_experts=experts,
                no_rope_layers=[int((i + 1) % 4 != 0) for i in range(layers)],
                moe_layers=list(range(1, layers, 2)))
    cfg = {"architectures": ["Llama4ForConditionalGeneration"], "boi_token_index": 200080, "eoi_token_index": 200081,
           "image_token_index": 200092, "model_type": "llama4", "text_config": text, "tie_word_embeddings": False,
           "torch_dtype": "bfloat16", "transformers_version": "4.51.0.dev0", "vision_config": VISION}
    return [(n, "BF16", shape) for n, shape in tensors(text)], cfg


if __name__ == "__main__":
    sized_main(TEXT["num_hidden_layers"], TEXT["num_local_experts"], build)
