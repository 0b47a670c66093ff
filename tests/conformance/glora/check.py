#!/usr/bin/python3
"""Independent checks of a GGUF LoRA adapter written by `shardforge export --format gguf-lora:TYPE`.

    /usr/bin/python3 check.py DUMP.json FILE.gguf BASE_DIR ADAPTER_DIR TYPE [--weight W]

DUMP.json: what @huggingface/gguf read from FILE.gguf (gguf_dump.mjs). Expectations come from
convert_lora_to_gguf.py and the PEFT files, not from shardforge:
  * KVs: exactly general.architecture, general.type = "adapter", adapter.type = "lora", general.name,
    adapter.lora.alpha (FLOAT32 = lora_alpha), general.quantization_version (UINT32 2); no hparams, no tokenizer;
  * tensors: "<gguf name>.lora_a" directly followed by ".lora_b" for every adapted module, lora_a ne [in, r],
    lora_b ne [r, out]; types per TYPE (q8_0: rows that are not whole 32-blocks fall back to F16);
  * f32 data: lora_a == A bit for bit; lora_b == permute(B) * s / (alpha / r), with s the PEFT scale (rsLoRA,
    rank/alpha patterns, adapter weight) and permute the llama Q/K head interleave (llama/mistral q and k only).
Prints one line of measured numbers; exits 1 on the first failure.
"""
import json
import math
import re
import struct
import sys

import numpy as np

GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
ARCH = {"llama": "llama", "mistral": "llama", "mixtral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "phi3": "phi3",
        "gemma": "gemma", "gemma2": "gemma2", "gemma3": "gemma3", "gemma3_text": "gemma3", "qwen2_moe": "qwen2moe",
        "qwen3_moe": "qwen3moe"}
MODULES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
           "self_attn.o_proj": "attn_output", "self_attn.qkv_proj": "attn_qkv", "mlp.gate_proj": "ffn_gate",
           "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "mlp.gate_up_proj": "ffn_up"}


def fail(msg):
    print("check.py: FAIL: " + msg)
    sys.exit(1)


def read_st(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        h = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", "test adapters are F32"
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype="<f4").reshape(v["shape"])
    return out


def pattern(pat, module, default):
    for k, v in pat.items():
        if re.fullmatch(r"(.*\.)?(" + k + r")", module):
            return v
    return default


def main():
    dump_path, gguf_path, base, adapter, typ = sys.argv[1:6]
    weight = float(sys.argv[7]) if len(sys.argv) > 7 and sys.argv[6] == "--weight" else 1.0
    dump = json.load(open(dump_path))
    cfg = json.load(open(f"{adapter}/adapter_config.json"))
    bcfg = json.load(open(f"{base}/config.json"))
    arch = ARCH[bcfg["model_type"]]

    kv = dump["kv"]
    want = {"general.architecture": ("STRING", arch), "general.type": ("STRING", "adapter"),
            "adapter.type": ("STRING", "lora"),
            "adapter.lora.alpha": ("FLOAT32", float(np.float32(cfg["lora_alpha"]))),
            "general.quantization_version": ("UINT32", 2)}
    for k, (t, v) in want.items():
        if k not in kv or kv[k]["type"] != t or kv[k]["value"] != v:
            fail(f"key {k}: got {kv.get(k)}, want {t} {v}")
    if kv.get("general.name", {}).get("type") != "STRING":
        fail("general.name missing or not a string")
    extra = sorted(set(kv) - set(want) - {"general.name"})
    if extra:
        fail(f"unexpected keys {extra}")

    ad = read_st(f"{adapter}/adapter_model.safetensors")
    expected = {}
    for key in ad:
        if key.endswith(".lora_embedding_A"):
            expected["token_embd.weight"] = (key[len("base_model.model."):-len(".lora_embedding_A")], key)
        if not key.endswith(".lora_A.weight"):
            continue
        mod = key[len("base_model.model."):-len(".lora_A.weight")]
        m = re.fullmatch(r"model\.layers\.(\d+)\.(\w+\.\w+)", mod)
        expected[f"blk.{m.group(1)}.{MODULES[m.group(2)]}.weight"] = (mod, key)
    tensors = dump["tensors"]
    names = [t["name"] for t in tensors]
    if len(names) != 2 * len(expected) or set(names) != {n + s for n in expected for s in (".lora_a", ".lora_b")}:
        fail(f"tensor names {names[:6]}... do not match the adapter's modules")
    raw = open(gguf_path, "rb").read()
    max_b_rel, n_scaled = 0.0, 0
    for i in range(0, len(tensors), 2):
        ta, tb = tensors[i], tensors[i + 1]
        base_name = ta["name"][: -len(".lora_a")]
        if tb["name"] != base_name + ".lora_b":
            fail(f"{ta['name']} is not directly followed by its lora_b")
        mod, key = expected[base_name]
        emb = key.endswith(".lora_embedding_A")
        A = ad[key].T.copy() if emb else ad[key]  # llama.cpp: token_embd.lora_a = A^T (convert_lora_to_gguf.py)
        B = ad[key[:-1] + "B"] if emb else ad[key.replace(".lora_A.", ".lora_B.")]
        n_in, r = (A.shape[0], A.shape[1]) if emb else (A.shape[1], A.shape[0])
        n_out = B.shape[0]
        want_a = [r, n_in] if emb else [n_in, r]
        if ta["ne"] != want_a or tb["ne"] != [r, n_out]:
            fail(f"{base_name}: ne a {ta['ne']} b {tb['ne']}, want {want_a} / [{r}, {n_out}]")
        plain = {"f32": GGML_F32, "f16": GGML_F16, "bf16": GGML_BF16}
        for t, ne0 in ((ta, want_a[0]), (tb, r)):
            want_t = plain[typ] if typ in plain else (GGML_Q8_0 if ne0 % 32 == 0 else GGML_F16)
            if t["type"] != want_t:
                fail(f"{t['name']}: ggml type {t['type']}, want {want_t}")
        if typ != "f32":
            continue
        ga = np.frombuffer(raw, dtype="<f4", count=A.size, offset=ta["offset"]).reshape(A.shape)
        gb = np.frombuffer(raw, dtype="<f4", count=B.size, offset=tb["offset"]).reshape(n_out, r)
        if not np.array_equal(ga, A):
            fail(f"{ta['name']}: lora_a differs from PEFT lora_A" + (" transposed" if emb else ""))
        rr = pattern(cfg.get("rank_pattern") or {}, mod, cfg["r"])
        alpha = pattern(cfg.get("alpha_pattern") or {}, mod, cfg["lora_alpha"])
        s = (alpha / math.sqrt(rr) if cfg.get("use_rslora") else alpha / rr) * weight
        factor = s / (float(np.float32(cfg["lora_alpha"])) / r)
        want_b = B.astype(np.float64) * factor
        if arch == "llama" and mod.endswith(("q_proj", "k_proj")):
            heads = bcfg["num_attention_heads"] if mod.endswith("q_proj") else bcfg.get(
                "num_key_value_heads", bcfg["num_attention_heads"])
            want_b = want_b.reshape(heads, 2, n_out // heads // 2, r).swapaxes(1, 2).reshape(n_out, r)
        rel = float(np.max(np.abs(gb - want_b)) / max(1e-30, np.max(np.abs(want_b))))
        max_b_rel = max(max_b_rel, rel)
        if rel > 1e-6:
            fail(f"{tb['name']}: lora_b off by relative {rel:.3g} (factor {factor})")
        n_scaled += abs(factor - 1) > 1e-9
    print(f"check.py: ok: {len(expected)} pairs, type {typ}, lora_b max rel err {max_b_rel:.3g}, "
          f"{n_scaled} pairs with folded scale")


if __name__ == "__main__":
    main()
