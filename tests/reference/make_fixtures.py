#!/usr/bin/python3
"""Generate small seeded HF-like base models and PEFT LoRA adapters covering the merge semantics of
PEFT's tuners/lora/layer.py, plus adapters that must be refused.

    make_fixtures.py OUT_DIR

Writes OUT_DIR/<case>/base/{config.json,model.safetensors}, OUT_DIR/<case>/<adapter>/{adapter_config.json,
adapter_model.safetensors}, OUT_DIR/cases.json (cases that must merge) and OUT_DIR/errors.json (inputs that must be
refused: expected error kind, and strings the message must contain).
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

V, H, I, KV, L, E = 48, 16, 24, 8, 2, 4   # vocab, hidden, intermediate, kv dim, layers, experts
P = "base_model.model."


def rnd(rng, shape, std):
    return (rng.standard_normal(shape) * std).astype(np.float32)


def llama_base(d, seed, dtype="F32", tie=False, qkv_bias=False, moe=False, arch="LlamaForCausalLM",
               text_config_tie=False):
    rng = np.random.default_rng(seed)
    t = {"model.embed_tokens.weight": rnd(rng, (V, H), 0.5), "model.norm.weight": 1 + rnd(rng, (H,), 0.1)}
    for i in range(L):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + rnd(rng, (H,), 0.1)
        t[p + "post_attention_layernorm.weight"] = 1 + rnd(rng, (H,), 0.1)
        t[p + "self_attn.q_proj.weight"] = rnd(rng, (H, H), 0.2)
        t[p + "self_attn.k_proj.weight"] = rnd(rng, (KV, H), 0.2)
        t[p + "self_attn.v_proj.weight"] = rnd(rng, (KV, H), 0.2)
        t[p + "self_attn.o_proj.weight"] = rnd(rng, (H, H), 0.2)
        if qkv_bias:
            t[p + "self_attn.q_proj.bias"] = rnd(rng, (H,), 0.1)
            t[p + "self_attn.k_proj.bias"] = rnd(rng, (KV,), 0.1)
            t[p + "self_attn.v_proj.bias"] = rnd(rng, (KV,), 0.1)
        if moe:
            t[p + "mlp.gate.weight"] = rnd(rng, (E, H), 0.2)
            t[p + "mlp.experts.gate_up_proj"] = rnd(rng, (E, 2 * I, H), 0.2)   # (E, out, in)
            t[p + "mlp.experts.down_proj"] = rnd(rng, (E, I, H), 0.2)          # (E, in, out): is_transposed
        else:
            t[p + "mlp.gate_proj.weight"] = rnd(rng, (I, H), 0.2)
            t[p + "mlp.up_proj.weight"] = rnd(rng, (I, H), 0.2)
            t[p + "mlp.down_proj.weight"] = rnd(rng, (H, I), 0.2)
    if not tie:
        t["lm_head.weight"] = rnd(rng, (V, H), 0.3)
    cfg = {"architectures": [arch], "model_type": "llama", "hidden_size": H, "intermediate_size": I,
           "num_hidden_layers": L, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": V,
           "torch_dtype": {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]}
    if text_config_tie:
        cfg["text_config"] = {"tie_word_embeddings": tie}
    else:
        cfg["tie_word_embeddings"] = tie
    if moe:
        cfg["num_local_experts"] = E
    save_model(d, t, dtype, cfg)
    return {k: v.shape for k, v in t.items()}


def gpt2_base(d, seed):
    rng = np.random.default_rng(seed)
    t = {"transformer.wte.weight": rnd(rng, (V, H), 0.5), "transformer.wpe.weight": rnd(rng, (32, H), 0.1),
         "transformer.ln_f.weight": 1 + rnd(rng, (H,), 0.1), "transformer.ln_f.bias": rnd(rng, (H,), 0.1)}
    for i in range(L):
        p = f"transformer.h.{i}."
        t[p + "attn.c_attn.weight"] = rnd(rng, (H, 3 * H), 0.2)   # Conv1D: (in, out)
        t[p + "attn.c_attn.bias"] = rnd(rng, (3 * H,), 0.1)
        t[p + "attn.c_proj.weight"] = rnd(rng, (H, H), 0.2)       # square: only the flag tells
        t[p + "attn.c_proj.bias"] = rnd(rng, (H,), 0.1)
        t[p + "mlp.c_fc.weight"] = rnd(rng, (H, 4 * H), 0.2)
        t[p + "mlp.c_proj.weight"] = rnd(rng, (4 * H, H), 0.2)
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": H, "n_layer": L, "vocab_size": V,
           "tie_word_embeddings": True, "torch_dtype": "float32"}
    save_model(d, t, "F32", cfg)


def save_model(d, t, dtype, cfg):
    os.makedirs(d, exist_ok=True)
    st_io.write(os.path.join(d, "model.safetensors"), {k: (dtype, v) for k, v in t.items()}, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def save_adapter(d, config, tensors, raw_config=None):
    os.makedirs(d, exist_ok=True)
    full = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "fixture/base",
            "r": 8, "lora_alpha": 8, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
            "inference_mode": True, "init_lora_weights": True, "target_modules": [], "modules_to_save": None,
            "use_rslora": False, "use_dora": False, "rank_pattern": {}, "alpha_pattern": {},
            "a_future_peft_field": {"unknown": "keys must be tolerated"}}
    full.update(config)
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        f.write(raw_config if raw_config is not None else json.dumps(full, indent=2))
    st_io.write(os.path.join(d, "adapter_model.safetensors"), tensors, {"format": "pt"})


class Lora:
    """Builds the tensors of one adapter."""

    def __init__(self, seed, dtype="F32"):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.t = {}

    def put(self, key, arr):
        self.t[P + key] = (self.dtype, arr)

    def linear(self, module, r, n_in, n_out, bias=False, dora_rows=None):
        self.put(module + ".lora_A.weight", rnd(self.rng, (r, n_in), 0.4))
        self.put(module + ".lora_B.weight", rnd(self.rng, (n_out, r), 0.4))
        if bias:
            self.put(module + ".lora_B.bias", rnd(self.rng, (n_out,), 0.3))
        if dora_rows is not None:
            self.put(module + ".lora_magnitude_vector", np.abs(1 + rnd(self.rng, (dora_rows,), 0.2)))

    def embedding(self, module, r, vocab, dim, dora=False):
        self.put(module + ".lora_embedding_A", rnd(self.rng, (r, vocab), 0.4))
        self.put(module + ".lora_embedding_B", rnd(self.rng, (dim, r), 0.4))
        if dora:
            self.put(module + ".lora_magnitude_vector", np.abs(2 + rnd(self.rng, (dim,), 0.3)))

    def full(self, key, shape, std=0.3):
        self.put(key, rnd(self.rng, shape, std))


def main(out):
    cases, errors = [], []
    os.makedirs(out, exist_ok=True)

    def case(name, adapters, untie=False, note=""):
        cases.append({"name": name, "base": f"{name}/base",
                      "adapters": [[f"{name}/{a}", w] for a, w in adapters], "untie": untie, "note": note})

    # 1. plain LoRA, bf16 base and bf16 adapter (rounding of inputs is exact; one RNE rounding at the end)
    llama_base(f"{out}/plain/base", 1, dtype="BF16")
    a = Lora(101, "BF16")
    for i in range(L):
        a.linear(f"model.layers.{i}.self_attn.q_proj", 4, H, H)
        a.linear(f"model.layers.{i}.self_attn.v_proj", 4, H, KV)
    save_adapter(f"{out}/plain/adapter", {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}, a.t)
    case("plain", [("adapter", 1.0)])

    # 2. rsLoRA with fractional alpha, all linear layers, f32
    llama_base(f"{out}/rslora/base", 2)
    a = Lora(102)
    for i in range(L):
        for m, (n_in, n_out) in {"self_attn.q_proj": (H, H), "self_attn.k_proj": (H, KV), "self_attn.v_proj": (H, KV),
                                 "self_attn.o_proj": (H, H), "mlp.gate_proj": (H, I), "mlp.up_proj": (H, I),
                                 "mlp.down_proj": (I, H)}.items():
            a.linear(f"model.layers.{i}.{m}", 3, n_in, n_out)
    save_adapter(f"{out}/rslora/adapter", {"r": 3, "lora_alpha": 6.5, "use_rslora": True}, a.t)
    case("rslora", [("adapter", 1.0)])

    # 3. DoRA on linear layers and on the embedding
    llama_base(f"{out}/dora/base", 3)
    a = Lora(103)
    for i in range(L):
        a.linear(f"model.layers.{i}.self_attn.q_proj", 4, H, H, dora_rows=H)
        a.linear(f"model.layers.{i}.mlp.down_proj", 4, I, H, dora_rows=H)
    a.embedding("model.embed_tokens", 4, V, H, dora=True)
    save_adapter(f"{out}/dora/adapter", {"r": 4, "lora_alpha": 16, "use_dora": True}, a.t)
    case("dora", [("adapter", 1.0)])

    # 4. rank/alpha patterns: regex keys, JSON order decides, the dot rule of (.*\.)?(key)$
    llama_base(f"{out}/patterns/base", 4)
    rank_pattern = {"_proj": 7,                                  # never matches: needs "." before "_proj"
                    "q_proj": 2,                                 # wins for both q_proj ...
                    "model\\.layers\\.1\\.self_attn\\.q_proj": 6,  # ... so this one is never used
                    "layers\\.1\\..*_proj": 5}                   # other layer-1 projections
    alpha_pattern = {"v_proj": 5.5, "layers\\.1\\.self_attn\\.v_proj": 1.0, "mlp\\.(up|down)_proj": 3}

    def rank_for(name):
        for k, v in rank_pattern.items():
            import re
            if re.match(rf"(.*\.)?({k})$", name):
                return v
        return 4
    a = Lora(104)
    for i in range(L):
        for m, (n_in, n_out) in {"self_attn.q_proj": (H, H), "self_attn.k_proj": (H, KV), "self_attn.v_proj": (H, KV),
                                 "mlp.up_proj": (H, I), "mlp.down_proj": (I, H)}.items():
            name = f"model.layers.{i}.{m}"
            a.linear(name, rank_for(name), n_in, n_out)
    save_adapter(f"{out}/patterns/adapter", {"r": 4, "lora_alpha": 8, "rank_pattern": rank_pattern,
                                              "alpha_pattern": alpha_pattern}, a.t)
    case("patterns", [("adapter", 1.0)])

    # 5. embedding LoRA (untied base) + 6. modules_to_save (full lm_head) in one adapter
    llama_base(f"{out}/embed_mts/base", 5)
    a = Lora(105)
    a.embedding("model.embed_tokens", 4, V, H)
    a.full("lm_head.weight", (V, H))
    a.linear("model.layers.0.self_attn.o_proj", 4, H, H)
    save_adapter(f"{out}/embed_mts/adapter", {"r": 4, "lora_alpha": 4, "modules_to_save": ["lm_head"]}, a.t)
    case("embed_mts", [("adapter", 1.0)])

    # 7. lora_bias (scaled bias delta) + bias="lora_only" saved biases (replacements, applied first), Qwen2-like
    llama_base(f"{out}/bias/base", 6, qkv_bias=True, arch="Qwen2ForCausalLM")
    a = Lora(106)
    for i in range(L):
        a.linear(f"model.layers.{i}.self_attn.q_proj", 4, H, H, bias=True)
        a.linear(f"model.layers.{i}.self_attn.k_proj", 4, H, KV, bias=True)
        a.full(f"model.layers.{i}.self_attn.q_proj.base_layer.bias", (H,))
    save_adapter(f"{out}/bias/adapter", {"r": 4, "lora_alpha": 12, "lora_bias": True, "bias": "lora_only"}, a.t)
    case("bias", [("adapter", 1.0)])

    # 8. tied embeddings, LoRA on lm_head -> untie: lm_head.weight = embed + delta, embed unchanged
    llama_base(f"{out}/tied_head/base", 7, tie=True, text_config_tie=True, arch="Gemma3ForConditionalGeneration")
    a = Lora(107)
    a.linear("lm_head", 4, H, V)
    a.linear("model.layers.0.self_attn.q_proj", 4, H, H)
    save_adapter(f"{out}/tied_head/adapter", {"r": 4, "lora_alpha": 8}, a.t)
    case("tied_head", [("adapter", 1.0)], untie=True)

    # 8b. tied, ensure_weight_tying: head LoRA mirrors the embedding LoRA; the shared tensor gets it once
    llama_base(f"{out}/tied_ewt/base", 8, tie=True)
    a = Lora(108)
    a.embedding("model.embed_tokens", 4, V, H)
    ea, eb = a.t[P + "model.embed_tokens.lora_embedding_A"][1], a.t[P + "model.embed_tokens.lora_embedding_B"][1]
    a.put("lm_head.lora_A.weight", np.ascontiguousarray(eb.T))   # (r, H)
    a.put("lm_head.lora_B.weight", np.ascontiguousarray(ea.T))   # (V, r)
    save_adapter(f"{out}/tied_ewt/adapter", {"r": 4, "lora_alpha": 8, "ensure_weight_tying": True}, a.t)
    case("tied_ewt", [("adapter", 1.0)], untie=False)

    # 8c. tied, LoRA on the input embedding only: PEFT's lm_head keeps using the base weight, so untie:
    #     lm_head.weight = the original embedding, embed_tokens gets the delta
    llama_base(f"{out}/tied_embed/base", 12, tie=True, dtype="BF16")
    a = Lora(113, "BF16")
    a.embedding("model.embed_tokens", 2, V, H)
    save_adapter(f"{out}/tied_embed/adapter", {"r": 2, "lora_alpha": 5}, a.t)
    case("tied_embed", [("adapter", 1.0)], untie=True)

    # 9. MoE target_parameters on 3-D experts: (E, out, in) and is_transposed (E, in, out), nested wrappers
    llama_base(f"{out}/moe/base", 9, moe=True, arch="Qwen3MoeForCausalLM")
    a = Lora(109)
    r = 2
    for i in range(L):
        m = f"model.layers.{i}.mlp.experts"
        # inner wrapper (first parameter): gate_up_proj; outer: down_proj
        a.put(m + ".base_layer.lora_A.weight", rnd(a.rng, (r * E, H), 0.4))
        a.put(m + ".base_layer.lora_B.weight", rnd(a.rng, (2 * I, r * E), 0.4))
        a.put(m + ".lora_A.weight", rnd(a.rng, (r * E, I), 0.4))
        a.put(m + ".lora_B.weight", rnd(a.rng, (H, r * E), 0.4))
    a.linear("model.layers.0.self_attn.q_proj", 8, H, H)
    save_adapter(f"{out}/moe/adapter", {"r": r, "lora_alpha": 4, "rank_pattern": {"q_proj": 8},
                                         "target_modules": ["q_proj"],
                                         "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]},
                 a.t)
    case("moe", [("adapter", 1.0)])

    # 10. two stacked adapters with weights (the second is rsLoRA and bf16), overlapping modules
    llama_base(f"{out}/stacked/base", 10, dtype="BF16")
    a = Lora(110)
    b = Lora(111, "BF16")
    for i in range(L):
        a.linear(f"model.layers.{i}.self_attn.q_proj", 4, H, H)
        a.linear(f"model.layers.{i}.mlp.up_proj", 4, H, I)
        b.linear(f"model.layers.{i}.self_attn.q_proj", 2, H, H)
        b.linear(f"model.layers.{i}.self_attn.o_proj", 2, H, H)
    save_adapter(f"{out}/stacked/first", {"r": 4, "lora_alpha": 8}, a.t)
    save_adapter(f"{out}/stacked/second", {"r": 2, "lora_alpha": 3, "use_rslora": True}, b.t)
    case("stacked", [("first", 0.7), ("second", -0.3)])

    # 11. fan_in_fan_out (GPT-2 Conv1D (in, out) weights; c_proj is square, so only the flag decides)
    gpt2_base(f"{out}/fifo/base", 11)
    a = Lora(112)
    for i in range(L):
        a.linear(f"transformer.h.{i}.attn.c_attn", 4, H, 3 * H)
        a.linear(f"transformer.h.{i}.attn.c_proj", 4, H, H)
    save_adapter(f"{out}/fifo/adapter", {"r": 4, "lora_alpha": 8, "fan_in_fan_out": True}, a.t)
    case("fifo", [("adapter", 1.0)])

    # ---------------------------------------------------------------- inputs that must be refused
    llama_base(f"{out}/errors/base", 20)

    def err(name, config, tensors, kind, contains, raw_config=None, skip_adapter=False):
        d = f"{out}/errors/{name}"
        if not skip_adapter:
            save_adapter(d, config, tensors, raw_config)
        errors.append({"name": name, "base": "errors/base", "adapters": [[f"errors/{name}", 1.0]], "kind": kind,
                       "contains": contains})

    def one(seed, module, r, n_in, n_out):
        x = Lora(seed)
        x.linear(module, r, n_in, n_out)
        return x

    ok = one(200, "model.layers.0.self_attn.q_proj", 4, H, H).t
    err("unknown_module", {"r": 4}, one(201, "model.layers.0.self_attn.qq_proj", 4, H, H).t, "BadInput",
        ["adapter_model.safetensors", "model.layers.0.self_attn.qq_proj.lora_A.weight", "does not have"])
    err("renamed_prefix", {"r": 4}, one(202, "model.language_model.layers.0.self_attn.q_proj", 4, H, H).t, "BadInput",
        ["model.language_model.layers.0.self_attn.q_proj.lora_A.weight"])
    err("shape_mismatch", {"r": 4}, one(203, "model.layers.0.self_attn.k_proj", 4, H, H).t, "BadInput",
        ["model.layers.0.self_attn.k_proj.lora_A.weight", "model.layers.0.self_attn.k_proj.weight", "[8, 16]"])
    err("rank_mismatch", {"r": 8}, ok, "BadInput", ["q_proj.lora_A.weight", "r=8"])
    err("bad_json", {}, ok, "BadInput", ["adapter_config.json", "not valid JSON"], raw_config='{"r": 4,')
    err("bad_regex", {"rank_pattern": {"q_proj(": 2}}, ok, "BadInput", ["adapter_config.json", "q_proj("])
    err("pissa", {"r": 4, "init_lora_weights": "pissa_niter_4"}, ok, "Unsupported", ["pissa_niter_4"])
    err("loftq", {"r": 4, "init_lora_weights": "loftq"}, ok, "Unsupported", ["loftq"])
    err("alora", {"r": 4, "alora_invocation_tokens": [1, 2]}, ok, "Unsupported", ["aLoRA"])
    err("arrow", {"r": 4, "arrow_config": {"top_k": 2}}, ok, "Unsupported", ["Arrow"])
    err("qalora", {"r": 4, "use_qalora": True}, ok, "Unsupported", ["QALoRA"])
    err("layer_replication", {"r": 4, "layer_replication": [[0, 2], [1, 2]]}, ok, "Unsupported",
        ["layer_replication"])
    err("not_lora", {"peft_type": "IA3"}, ok, "Unsupported", ["IA3"])
    err("unpaired", {"r": 4}, {k: v for k, v in ok.items() if "lora_A" in k}, "BadInput", ["pairs"])
    nan = dict(ok)
    bkey = P + "model.layers.0.self_attn.q_proj.lora_B.weight"
    arr = nan[bkey][1].copy()
    arr[3, 1] = np.nan
    nan[bkey] = ("F32", arr)
    err("nan", {"r": 4}, nan, "BadInput", ["q_proj.lora_B.weight", "non-finite"])
    dm = Lora(204)
    dm.linear("model.layers.0.self_attn.q_proj", 4, H, H, dora_rows=H)
    err("dora_without_flag", {"r": 4}, dm.t, "BadInput", ["q_proj.lora_magnitude_vector", "use_dora"])
    dm2 = Lora(205)
    dm2.linear("model.layers.0.self_attn.q_proj", 4, H, H, dora_rows=H - 1)
    err("dora_bad_magnitude", {"r": 4, "use_dora": True}, dm2.t, "BadInput", ["q_proj.lora_magnitude_vector", "[15]"])
    lb = Lora(206)
    lb.linear("model.layers.0.self_attn.q_proj", 4, H, H, bias=True)
    err("lora_bias_no_base_bias", {"r": 4, "lora_bias": True}, lb.t, "BadInput",
        ["q_proj.lora_B.bias", "model.layers.0.self_attn.q_proj.bias"])
    mts = Lora(207)
    mts.full("score.weight", (2, H))
    err("modules_to_save_unknown", {"r": 4, "modules_to_save": ["score"]}, mts.t, "BadInput", ["score.weight"])
    ue = Lora(208)
    ue.put("model.layers.0.self_attn.q_proj.lora_E", rnd(ue.rng, (4, 1), 0.1))
    err("unknown_lora_kind", {"r": 4}, ue.t, "Unsupported", ["lora_E"])
    d = f"{out}/errors/bin_only"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/adapter_config.json", "w") as f:
        json.dump({"peft_type": "LORA", "r": 4, "lora_alpha": 8}, f)
    with open(f"{d}/adapter_model.bin", "wb") as f:
        f.write(b"\x80\x02pickle")
    err("bin_only", None, None, "Unsupported", ["adapter_model.bin", "pickle"], skip_adapter=True)

    with open(f"{out}/cases.json", "w") as f:
        json.dump(cases, f, indent=1)
    with open(f"{out}/errors.json", "w") as f:
        json.dump(errors, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
