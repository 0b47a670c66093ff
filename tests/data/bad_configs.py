#!/usr/bin/python3
"""config.json validated against the tensors (docs/formats.md, "Config validation"). For several architectures
(dense, GQA, MoE with per-expert and fused experts, MLA, vision-language with text_config), a demo's config.json is
corrupted one key at a time; the export must exit 3 with one 'shardforge: error:' line naming config.json and the
key, and write nothing, for a plain safetensors merge and for GGUF. Every unmodified demo must plan cleanly (no
false refusal), and unknown extra keys must reach the merged config.json untouched.
Usage: bad_configs.py SHARDFORGE_BIN"""
import json, os, shutil, subprocess, sys, tempfile

BIN = sys.argv[1]
ARCHS = ["llama", "llama3", "mistral", "mixtral", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "qwen35", "qwen35moe",
         "gemma", "gemma2", "gemma3", "phi3", "mistral3", "ministral3", "glm4moe", "qwen3next", "gemma4", "gemma4moe",
         "deepseek2", "gpt-oss", "gpt-oss-mxfp4", "kimi-k2-int4", "minimax-m2", "llama4", "gemma3-vl"]
fails = []
n_checks = 0

def check(ok, what):
    global n_checks
    n_checks += 1
    if not ok:
        fails.append(what)
        print("FAIL " + what)

def demo(work, arch):
    d = os.path.join(work, arch)
    if not os.path.isdir(d):
        subprocess.run([BIN, "demo", "--arch", arch, d], check=True, stdout=subprocess.DEVNULL)
    return d

def export(base, out, fmt, extra=()):
    return subprocess.run([BIN, "export", "--base", base, "--out", out, "--format", fmt, *extra],
                          capture_output=True, text=True, timeout=300)

def edit(cfg_path, fn):
    j = json.load(open(cfg_path))
    target = j["text_config"] if "text_config" in j and isinstance(j["text_config"], dict) and fn.__name__ != "top" else j
    fn(target)
    json.dump(j, open(cfg_path, "w"), indent=2)

def refused(work, arch, name, mutate, needles, fmts=("safetensors", "gguf:q8_0")):
    src = demo(work, arch)
    for fmt in fmts:
        case = os.path.join(work, "case")
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(src, case)
        base, out = os.path.join(case, "base"), os.path.join(case, "out")
        edit(os.path.join(base, "config.json"), mutate)
        r = export(base, out, fmt)
        errs = [l for l in r.stderr.splitlines() if l.startswith("shardforge: error:")]
        label = f"{arch} {name} ({fmt})"
        check(r.returncode == 3, f"{label}: exit {r.returncode}, expected 3: {r.stderr.strip()[:300]!r}")
        check(len(errs) == 1, f"{label}: expected one error line, got {errs}")
        for n in ["config.json"] + needles:
            check(any(n in e for e in errs), f"{label}: error does not mention {n!r}: {errs}")
        left = [f for _, _, fs in os.walk(out) for f in fs] if os.path.isdir(out) else []
        check(not left, f"{label}: output files left: {left[:5]}")
        print(f"ok   {label}: {errs[0] if errs else ''}")

def setter(key, value):
    def f(c): c[key] = value
    return f

def deleter(key):
    def f(c): c.pop(key, None)
    return f

def adder(key, delta):
    def f(c): c[key] = c[key] + delta
    return f

def main():
    work = tempfile.mkdtemp(prefix="sf-badcfg-")
    try:
        # No false refusals: every demo plans (dry run) for a safetensors merge and for GGUF.
        for arch in ARCHS:
            d = demo(work, arch)
            # MXFP4 experts have no safetensors output (docs/formats.md, gpt-oss): GGUF only there.
            for fmt in ("gguf:q8_0",) if arch == "gpt-oss-mxfp4" else ("safetensors", "gguf:q8_0"):
                r = export(os.path.join(d, "base"), os.path.join(work, "dry"), fmt, ["--dry-run"])
                check(r.returncode == 0, f"{arch} ({fmt}) unmodified demo refused: {r.stderr.strip()[:300]!r}")
            print(f"ok   {arch}: unmodified demo plans")
        # Dense GQA (Llama), Qwen3 MoE (per-expert tensors), gpt-oss (fused experts), Gemma 4 (global layers),
        # DeepSeek-V3 (MLA, MTP layer), Mistral 3 (keys inside text_config), Phi-3 (fused qkv).
        for arch in ["llama", "qwen3moe", "gemma4"]:
            refused(work, arch, "wrong num_key_value_heads", setter("num_key_value_heads", 4), ["num_key_value_heads"])
        refused(work, "llama", "num_key_value_heads as a string", setter("num_key_value_heads", "2"),
                ["num_key_value_heads", "integer"])
        refused(work, "llama", "num_key_value_heads not dividing the heads", setter("num_key_value_heads", 3),
                ["num_key_value_heads", "divide"])
        refused(work, "phi3", "wrong num_key_value_heads (fused qkv)", setter("num_key_value_heads", 4),
                ["num_key_value_heads", "qkv_proj"])
        refused(work, "llama", "wrong num_attention_heads", setter("num_attention_heads", 4), ["num_attention_heads"])
        refused(work, "qwen3next", "wrong num_attention_heads (gated queries)", setter("num_attention_heads", 4),
                ["num_attention_heads"])
        refused(work, "gemma4", "wrong num_global_key_value_heads", setter("num_global_key_value_heads", 2),
                ["num_global_key_value_heads"])
        refused(work, "qwen35", "layer_types shorter than the layers", lambda c: c["layer_types"].pop(),
                ["layer_types"])
        refused(work, "qwen3", "wrong head_dim", setter("head_dim", 16), ["head_dim"])
        refused(work, "llama", "wrong hidden_size", setter("hidden_size", 128), ["hidden_size"])
        refused(work, "llama", "hidden_size as a float with a fraction", setter("hidden_size", 256.5),
                ["hidden_size", "integer"])
        for arch in ["llama", "qwen3moe", "deepseek2"]:
            refused(work, arch, "missing num_hidden_layers", deleter("num_hidden_layers"), ["num_hidden_layers"])
            # +2: DeepSeek-V3's MTP layer (num_nextn_predict_layers = 1) follows the last one, so +1 is ambiguous
            refused(work, arch, "too many layers", adder("num_hidden_layers", 2), ["num_hidden_layers", "layer"])
            refused(work, arch, "too few layers", adder("num_hidden_layers", -1), ["num_hidden_layers", "layer"])
        for arch in ["llama", "mixtral", "mistral3", "gemma3"]:
            refused(work, arch, "vocab mismatch", adder("vocab_size", 64), ["vocab_size", "embed_tokens"])
        refused(work, "mistral3", "vocab_size missing from text_config and top level", deleter("vocab_size"),
                ["vocab_size"])
        refused(work, "llama", "vocab_size null", setter("vocab_size", None), ["vocab_size"])
        for arch, key in [("mixtral", "num_local_experts"), ("qwen3moe", "num_experts"), ("gpt-oss", "num_local_experts"),
                          ("deepseek2", "n_routed_experts"), ("gemma4moe", "num_experts"), ("qwen35moe", "num_experts")]:
            refused(work, arch, "wrong expert count", adder(key, 2), [key])
        refused(work, "qwen3moe", "num_experts_per_tok above the expert count", setter("num_experts_per_tok", 9),
                ["num_experts_per_tok"])
        refused(work, "llama", "rope_theta as a string", setter("rope_theta", "10000"), ["rope_theta"])
        refused(work, "llama", "rope_theta negative", setter("rope_theta", -1.0), ["rope_theta"])
        refused(work, "llama3", "rope_scaling factor zero", lambda c: c.__setitem__(
            "rope_scaling", {"rope_type": "llama3", "factor": 0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192}), ["rope_scaling.factor"])
        refused(work, "llama", "rope_scaling not an object", setter("rope_scaling", [2.0]), ["rope_scaling"])

        # Unknown extra keys pass through a safetensors merge untouched (order and values).
        d = demo(work, "qwen3moe")
        case = os.path.join(work, "extra")
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(d, case)
        cfg = os.path.join(case, "base", "config.json")
        j = json.load(open(cfg))
        j["my_custom_key"] = {"nested": [1, 2.5, "x", None], "deep": {"a": True}}
        j["zz_last"] = "kept"
        json.dump(j, open(cfg, "w"))
        r = export(os.path.join(case, "base"), os.path.join(case, "out"), "safetensors",
                   ["--adapter", os.path.join(case, "adapter")])
        check(r.returncode == 0, f"extra keys: export failed: {r.stderr.strip()[:300]!r}")
        if r.returncode == 0:
            o = json.load(open(os.path.join(case, "out", "config.json")))
            check(o.get("my_custom_key") == j["my_custom_key"] and o.get("zz_last") == "kept",
                  f"extra keys changed: {o.get('my_custom_key')!r} {o.get('zz_last')!r}")
            print("ok   unknown config keys pass through a merge untouched")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"bad-config corpus: {n_checks - len(fails)} of {n_checks} checks passed")
    sys.exit(1 if fails else 0)

main()
