#!/usr/bin/python3
"""Bad-input corpus: every case is a corrupted copy of the demo model/adapter (or a bad option). For each, the
export must exit with the documented code, print one 'shardforge: error:' line naming the file (and tensor where
there is one), not crash or hang, and leave no output files. Usage: bad_inputs.py SHARDFORGE_BIN [MPIRUN...]"""
import json, os, shutil, struct, subprocess, sys, tempfile

BIN = sys.argv[1]
REF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference")
sys.path.insert(0, REF)
import quant_ref  # noqa: E402  (quantized-base layouts)
MPI = sys.argv[2:]  # optional launcher prefix, e.g. mpirun -np 2 --oversubscribe

def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]

def st_write_raw(path, header_obj_or_bytes, data):
    h = header_obj_or_bytes if isinstance(header_obj_or_bytes, bytes) else json.dumps(header_obj_or_bytes).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)

def first_shard(base):
    return os.path.join(base, "model-00001-of-00002.safetensors")

def mutate_header(path, fn):
    h, data = st_read(path)
    h = fn(h, data)
    if isinstance(h, tuple):
        h, data = h
    st_write_raw(path, h, data)

def run_case(name, setup, code, needles, extra=(), fmt="safetensors"):
    work = tempfile.mkdtemp(prefix="sf-bad-")
    try:
        demo = os.path.join(work, "demo")
        subprocess.run([BIN, "demo", demo], check=True, stdout=subprocess.DEVNULL)
        base, adapter, out = os.path.join(demo, "base"), os.path.join(demo, "adapter"), os.path.join(work, "out")
        args = [BIN, "export", "--base", base, "--adapter", adapter, "--out", out, "--format", fmt]
        args = setup(base, adapter, out, args) or args
        try:
            r = subprocess.run(MPI + args + list(extra), capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return f"{name}: HANG (no exit within 120 s)"
        errs = [l for l in r.stderr.splitlines() if l.startswith("shardforge: error:")]
        problems = []
        if r.returncode != code:
            problems.append(f"exit {r.returncode}, expected {code}")
        if r.returncode < 0 or r.returncode >= 128:
            problems.append("crashed")
        if len(errs) != 1:
            problems.append(f"expected one error line, got {len(errs)}: {r.stderr.strip()[:400]!r}")
        for n in needles:
            if not any(n in e for e in errs):
                problems.append(f"error does not mention {n!r}: {errs}")
        left = []
        if os.path.isdir(out):
            for root, _, files in os.walk(out):
                left += [os.path.join(root, f) for f in files if f != "keep.txt"]
        if left:
            problems.append(f"left output files: {left[:5]}")
        return f"{name}: " + "; ".join(problems) if problems else None
    finally:
        os.environ.pop("HF_HUB_CACHE", None)  # set by the HF-cache cases
        shutil.rmtree(work, ignore_errors=True)

def nothing(base, adapter, out, args):
    return None

def cases():
    c = []
    add = lambda *a, **k: c.append((a, k))
    # --- options and directories
    add("missing base dir", lambda b, a, o, args: [x if x != b else b + "-nope" for x in args], 3, ["base-nope"])
    def nonempty_out(b, a, o, args):
        os.makedirs(o); open(os.path.join(o, "keep.txt"), "w").write("x")
    add("non-empty output dir", nonempty_out, 2, ["out", "--overwrite"])
    add("unknown format", nothing, 2, ["gguf-zip"], fmt="gguf-zip")
    add("unknown gguf type", nothing, 2, ["q9_k"], fmt="gguf:q9_k")
    # --- safetensors corruption
    def truncate(b, a, o, args):
        p = first_shard(b); sz = os.path.getsize(p); os.truncate(p, sz - 1000)
    add("truncated shard", truncate, 3, ["model-00001-of-00002.safetensors"])
    def huge_header_len(b, a, o, args):
        p = first_shard(b); d = open(p, "rb").read(); open(p, "wb").write(struct.pack("<Q", 1 << 40) + d[8:])
    add("header length beyond file", huge_header_len, 3, ["model-00001-of-00002.safetensors"])
    def tiny_file(b, a, o, args):
        open(first_shard(b), "wb").write(b"\x01\x02")
    add("file shorter than 8 bytes", tiny_file, 3, ["model-00001-of-00002.safetensors"])
    def bad_json(b, a, o, args):
        p = first_shard(b); h, data = st_read(p); st_write_raw(p, b"{not json", data)
    add("invalid header JSON", bad_json, 3, ["model-00001-of-00002.safetensors"])
    def unknown_dtype(b, a, o, args):
        def f(h, d):
            k = sorted(x for x in h if x != "__metadata__")[0]; h[k]["dtype"] = "Q4"; return h
        mutate_header(first_shard(b), f)
    add("unknown dtype", unknown_dtype, 3, ["model-00001-of-00002.safetensors", "Q4"])
    def size_mismatch(b, a, o, args):
        def f(h, d):
            k = [x for x in h if x != "__metadata__" and len(h[x]["shape"]) == 2][0]; h[k]["shape"][0] += 1; return h
        mutate_header(first_shard(b), f)
    add("byte size != shape x dtype", size_mismatch, 3, ["model-00001-of-00002.safetensors"])
    def overlap(b, a, o, args):
        def f(h, d):
            ks = sorted((x for x in h if x != "__metadata__"), key=lambda x: h[x]["data_offsets"][0])
            h[ks[1]]["data_offsets"][0] -= 2; h[ks[1]]["data_offsets"][1] -= 2; return h
        mutate_header(first_shard(b), f)
    add("overlapping data ranges", overlap, 3, ["model-00001-of-00002.safetensors"])
    def dup(b, a, o, args):
        p = first_shard(b); h, data = st_read(p)
        raw = json.dumps(h)
        k = [x for x in h if x != "__metadata__"][0]
        raw = raw[:-1] + ", " + json.dumps(k) + ": " + json.dumps(h[k]) + "}"
        st_write_raw(p, raw.encode(), data)
    add("duplicate tensor name", dup, 3, ["model-00001-of-00002.safetensors"])
    def missing_shard(b, a, o, args):
        os.remove(os.path.join(b, "model-00002-of-00002.safetensors"))
    add("index references a missing shard", missing_shard, 3, ["model-00002-of-00002.safetensors"])
    def index_escape(b, a, o, args):
        p = os.path.join(b, "model.safetensors.index.json"); j = json.load(open(p))
        k = next(iter(j["weight_map"])); j["weight_map"][k] = "../../etc/passwd"; json.dump(j, open(p, "w"))
    add("index path escapes the model dir", index_escape, 3, ["passwd"])
    def index_absolute(b, a, o, args):
        p = os.path.join(b, "model.safetensors.index.json"); j = json.load(open(p))
        k = next(iter(j["weight_map"])); j["weight_map"][k] = os.path.abspath(first_shard(b)); json.dump(j, open(p, "w"))
    add("index names a shard by absolute path", index_absolute, 3, ["model.safetensors.index.json", "absolute path"])
    # --- hostile inputs: nesting, sizes, HF cache links (docs/formats.md, "Hostile inputs")
    def nest(n):
        return "[" * n + "]" * n
    def deep_json(name, where):  # a valid JSON file with a key nested 100000 levels deep
        def setup(b, a, o, args):
            p = os.path.join(b if where == "base" else a, name)
            text = open(p).read().rstrip()
            assert text.endswith("}")
            open(p, "w").write(text[:-1] + ', "deep": ' + nest(100000) + "}")
        return setup
    add("config.json nested 100000 deep", deep_json("config.json", "base"), 3, ["config.json", "nested"])
    add("tokenizer.json nested 100000 deep", deep_json("tokenizer.json", "base"), 3, ["tokenizer.json", "nested"],
        fmt="gguf:q8_0")
    add("adapter_config.json nested 100000 deep", deep_json("adapter_config.json", "adapter"), 3,
        ["adapter_config.json", "nested"])
    add("index nested 100000 deep", deep_json("model.safetensors.index.json", "base"), 3,
        ["model.safetensors.index.json", "nested"])
    def huge_file(name):  # sparse: 300 MB claimed, no data written; refused by size before it is read
        def setup(b, a, o, args):
            os.truncate(os.path.join(b, name), 300 << 20)
        return setup
    add("tokenizer.json of 300 MB (GGUF)", huge_file("tokenizer.json"), 3, ["tokenizer.json", "larger than"],
        fmt="gguf:q8_0")
    add("tokenizer.json of 300 MB (safetensors)", huge_file("tokenizer.json"), 3, ["tokenizer.json", "larger than"])
    add("config.json of 300 MB", huge_file("config.json"), 3, ["config.json", "larger than"])
    def hf_cache(link_name, target):  # --base org/demo from an HF cache whose snapshot links `link_name` to `target`
        def setup(b, a, o, args):
            cache = os.path.join(os.path.dirname(o), "hf-cache")
            repo = os.path.join(cache, "models--org--demo"); sha = "0123456789abcdef0123456789abcdef01234567"
            snap = os.path.join(repo, "snapshots", sha)
            os.makedirs(os.path.join(repo, "blobs")); os.makedirs(snap); os.makedirs(os.path.join(repo, "refs"))
            open(os.path.join(repo, "refs", "main"), "w").write(sha)
            for f in sorted(os.listdir(b)):
                shutil.copy(os.path.join(b, f), os.path.join(repo, "blobs", "blob-" + f))
                t = target(b, f) if f == link_name else os.path.join("..", "..", "blobs", "blob-" + f)
                os.symlink(t, os.path.join(snap, f))
            os.environ["HF_HUB_CACHE"] = cache
            return [x if x != b else "org/demo" for x in args]
        return setup
    add("HF cache: snapshot link to an absolute path", hf_cache("config.json", lambda b, f: os.path.join(b, f)), 3,
        ["config.json", "outside"])
    add("HF cache: snapshot link out of the repo", hf_cache("tokenizer.json",
        lambda b, f: os.path.join("..", "..", "..", "..", "demo", "base", f)), 3, ["tokenizer.json", "outside"])
    # --- adapters
    def bad_adapter_json(b, a, o, args):
        open(os.path.join(a, "adapter_config.json"), "w").write("{ r: 8")
    add("adapter_config.json not JSON", bad_adapter_json, 3, ["adapter_config.json"])
    def pissa(b, a, o, args):
        p = os.path.join(a, "adapter_config.json"); j = json.load(open(p)); j["init_lora_weights"] = "pissa"
        json.dump(j, open(p, "w"))
    add("unconverted PiSSA adapter", pissa, 4, ["adapter_config.json", "pissa"])
    def unmatched_key(b, a, o, args):
        p = os.path.join(a, "adapter_model.safetensors")
        def f(h, d):
            k = [x for x in h if x.endswith("q_proj.lora_A.weight")][0]
            h[k.replace("layers.0.", "layers.99.")] = h.pop(k)
            kb = k.replace("lora_A", "lora_B"); h[kb.replace("layers.0.", "layers.99.")] = h.pop(kb)
            return h
        mutate_header(p, f)
    add("LoRA key matching no base tensor", unmatched_key, 3, ["adapter_model.safetensors", "layers.99"])
    def lora_shape(b, a, o, args):
        p = os.path.join(a, "adapter_model.safetensors")
        def f(h, d):
            k = [x for x in h if x.endswith("layers.0.self_attn.q_proj.lora_A.weight")][0]
            r, n = h[k]["shape"]; h[k]["shape"] = [r * 2, n // 2]; return h
        mutate_header(p, f)
    add("LoRA shape mismatch", lora_shape, 3, ["q_proj"])
    def nan_adapter(b, a, o, args):
        p = os.path.join(a, "adapter_model.safetensors"); h, data = st_read(p)
        k = [x for x in h if x.endswith("layers.1.mlp.down_proj.lora_B.weight")][0]
        s = h[k]["data_offsets"][0]; data = bytearray(data); data[s:s + 4] = struct.pack("<f", float("nan"))
        st_write_raw(p, h, bytes(data))
    add("NaN after merge", nan_adapter, 3, ["down_proj"])
    def adapter_cfg(key, value):
        def setup(b, a, o, args):
            p = os.path.join(a, "adapter_config.json"); j = json.load(open(p)); j[key] = value
            open(p, "w").write(json.dumps(j))  # NaN is written as the bare token NaN, as Python's json does
        return setup
    add("adapter rank 2^40", adapter_cfg("r", 1 << 40), 3, ["adapter_config.json", "'r'"])
    add("adapter rank_pattern 2^40", adapter_cfg("rank_pattern", {"q_proj": 1 << 40}), 3,
        ["adapter_config.json", "rank_pattern"])
    add("adapter alpha 1e308", adapter_cfg("lora_alpha", 1e308), 3, ["adapter_config.json", "f32"])
    add("adapter alpha NaN", adapter_cfg("lora_alpha", float("nan")), 3, ["adapter_config.json"])
    add("adapter alpha_pattern Infinity", adapter_cfg("alpha_pattern", {"q_proj": float("inf")}), 3,
        ["adapter_config.json"])
    def factor_value(key_end, value):
        def setup(b, a, o, args):
            p = os.path.join(a, "adapter_model.safetensors"); h, data = st_read(p)
            k = [x for x in h if x.endswith(key_end)][0]
            s0 = h[k]["data_offsets"][0] + 12; data = bytearray(data); data[s0:s0 + 4] = struct.pack("<f", value)
            st_write_raw(p, h, bytes(data))
        return setup
    add("Inf in a lora_A factor", factor_value("layers.0.self_attn.v_proj.lora_A.weight", float("inf")), 3,
        ["adapter_model.safetensors", "layers.0.self_attn.v_proj.lora_A.weight", "non-finite"])
    add("NaN in a lora_A factor (GGUF)", factor_value("layers.1.mlp.up_proj.lora_A.weight", float("nan")), 3,
        ["adapter_model.safetensors", "layers.1.mlp.up_proj.lora_A.weight", "non-finite"], fmt="gguf:q8_0")
    def int_factor(b, a, o, args):  # same byte size, integer dtype: not a LoRA factor
        def f(h, d):
            k = [x for x in h if x.endswith("layers.0.self_attn.k_proj.lora_B.weight")][0]; h[k]["dtype"] = "I32"
            return h
        mutate_header(os.path.join(a, "adapter_model.safetensors"), f)
    add("adapter tensor of integer dtype", int_factor, 3,
        ["adapter_model.safetensors", "layers.0.self_attn.k_proj.lora_B.weight", "I32"])
    def no_adapter_weights(b, a, o, args):
        os.remove(os.path.join(a, "adapter_model.safetensors"))
    add("adapter without weights", no_adapter_weights, 3, ["adapter_model.safetensors"])
    # --- GGUF planning
    def unsupported_arch(b, a, o, args):
        p = os.path.join(b, "config.json"); j = json.load(open(p)); j["architectures"] = ["FalconForCausalLM"]
        json.dump(j, open(p, "w"))
    add("unsupported architecture", unsupported_arch, 4, ["FalconForCausalLM", "LlamaForCausalLM"], fmt="gguf:q8_0")
    def unknown_pre(b, a, o, args):
        p = os.path.join(b, "tokenizer.json"); j = json.load(open(p))
        j["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "[a-z]+"}, "behavior": "Isolated", "invert": False}
        json.dump(j, open(p, "w"))
    add("unknown pre-tokenizer", unknown_pre, 4, ["tokenizer.json"], fmt="gguf:q8_0")
    def no_tokenizer(b, a, o, args):
        os.remove(os.path.join(b, "tokenizer.json"))
    add("missing tokenizer files", no_tokenizer, 4, ["tokenizer"], fmt="gguf:f16")
    def vocab_small(b, a, o, args):
        p = os.path.join(b, "config.json"); j = json.load(open(p)); j["vocab_size"] = 300; json.dump(j, open(p, "w"))
    add("tokenizer vocab larger than embeddings", vocab_small, 3, ["vocab"], fmt="gguf:f16")
    def unmapped(b, a, o, args):
        p = first_shard(b)
        def f(h, d):
            k = [x for x in h if x != "__metadata__" and x.endswith("input_layernorm.weight")][0]
            h["model.layers.0.mystery.weight"] = h.pop(k); return h
        mutate_header(p, f)
        ip = os.path.join(b, "model.safetensors.index.json"); j = json.load(open(ip))
        k = [x for x in j["weight_map"] if x.endswith("input_layernorm.weight") and j["weight_map"][x].startswith("model-00001")][0]
        j["weight_map"]["model.layers.0.mystery.weight"] = j["weight_map"].pop(k); json.dump(j, open(ip, "w"))
    add("tensor name that maps to nothing", unmapped, 3, ["mystery"], fmt="gguf:q8_0")
    # --- quantized bases: layouts written by tests/reference/quant_ref.py, then corrupted
    def quantized(layout, mutate, extra_args=()):
        def setup(b, a, o, args):
            q = b + "-" + layout
            subprocess.run(["/usr/bin/python3", os.path.join(REF, "quant_ref.py"), "make", layout, b, q], check=True)
            path = os.path.join(q, "model.safetensors")
            t = quant_ref.read_raw(path)
            mutate(t, b)
            quant_ref.write_raw(path, t)
            return [q if x == b else x for x in args] + [x.replace("@BASE", b) for x in extra_args]
        return setup
    QP = "model.layers.0.self_attn.q_proj"
    def bad_state_json(t, b):
        k = QP + ".weight.quant_state.bitsandbytes__nf4"; dt, sh, blob = t[k]; t[k] = (dt, sh, b"[" + blob[1:])
    add("bnb quant_state not a JSON object", quantized("nf4", bad_state_json), 3, ["quant_state", QP])
    def absmax_count(t, b):
        k = QP + ".weight.quant_state.bitsandbytes__nf4"; dt, sh, blob = t[k]
        t[k] = (dt, sh, blob.replace(b'"blocksize": 64', b'"blocksize": 32'))
    add("bnb absmax count does not match the shape", quantized("nf4", absmax_count), 3, [QP + ".weight.absmax", "expected"])
    def no_absmax(t, b):
        del t[QP + ".weight.absmax"]
    add("bnb weight without absmax", quantized("nf4", no_absmax), 3, [QP, "absmax"])
    def no_scb(t, b):
        del t[QP + ".SCB"]
    add("int8 weight without SCB", quantized("int8", no_scb), 3, [QP, "SCB"])
    def no_fp8_scale(t, b):
        del t[QP + ".weight_scale_inv"]
    add("FP8 weight without its scale", quantized("fp8block", no_fp8_scale), 3, [QP, "scale"])
    def small_fp8_scale(t, b):
        t[QP + ".weight_scale_inv"] = ("F32", (1, 1), struct.pack("<f", 0.01))
    add("FP8 block scales do not cover the weight", quantized("fp8block", small_fp8_scale), 3,
        [QP + ".weight_scale_inv", "does not cover"])
    # compressed-tensors pack-quantized INT4 (`shardforge demo --arch kimi-k2-int4`), then corrupted
    def kimi(mutate):
        def setup(b, a, o, args):
            k = b + "-kimi"
            subprocess.run([BIN, "demo", k, "--arch", "kimi-k2-int4", "--shards", "1"], check=True,
                           stdout=subprocess.DEVNULL)
            mutate(os.path.join(k, "base"))
            return [BIN, "export", "--base", os.path.join(k, "base"), "--out", o, "--format", "gguf:q8_0"]
        return setup
    KP = "model.layers.1.mlp.experts.0.up_proj"
    def kimi_tensors(base, mutate):
        path = os.path.join(base, "model.safetensors")
        t = quant_ref.read_raw(path)
        mutate(t)
        quant_ref.write_raw(path, t)
    def kimi_zero_point(base):
        def f(t):
            dt, sh, blob = t[KP + ".weight_packed"]
            t[KP + ".weight_zero_point"] = (dt, [sh[0] // 8, sh[1] * 8 // 32], bytes(4 * (sh[0] // 8) * (sh[1] // 4)))
        kimi_tensors(base, f)
    add("INT4 asymmetric (weight_zero_point)", kimi(kimi_zero_point), 4, ["config.json", KP, "weight_zero_point"])
    def kimi_two_groups(base):
        p = os.path.join(base, "config.json"); c = json.load(open(p))
        g = c["quantization_config"]["config_groups"]; g["group_1"] = g["group_0"]
        json.dump(c, open(p, "w"))
    add("INT4 with two config groups", kimi(kimi_two_groups), 4, ["config.json", "one config group"])
    def kimi_shape(base):
        path = os.path.join(base, "model.safetensors")
        h, d = st_read(path)
        lo = h[KP + ".weight_shape"]["data_offsets"][0]
        d = d[:lo] + struct.pack("<qq", 384, 999) + d[lo + 16:]
        st_write_raw(path, h, d)
    add("INT4 weight_shape does not match weight_packed", kimi(kimi_shape), 3, [KP + ".weight_shape", "does not match"])
    def kimi_scale(base):
        def f(t):
            dt, sh, blob = t[KP + ".weight_scale"]
            t[KP + ".weight_scale"] = (dt, [sh[0], sh[1] // 2], blob[:len(blob) // 2])
        kimi_tensors(base, f)
    add("INT4 group scales do not cover the weight", kimi(kimi_scale), 3, [KP + ".weight_scale", "one per group"])
    def other_original(t, b):
        subprocess.run([BIN, "demo", b + "-small", "--hidden", "128", "--heads", "4"], check=True,
                       stdout=subprocess.DEVNULL)
    add("--original-base with different shapes", quantized("nf4dq", other_original,
        ["--merge-into", "original", "--original-base", "@BASE-small/base"]), 3, ["--original-base", "shape"])
    # --- batch job files (`shardforge run JOB.toml`); outputs go to OUT/<variant>
    def job(text):
        def setup(b, a, o, args):
            jp = os.path.join(os.path.dirname(o), "job.toml")
            open(jp, "w").write(text.format(base=b, adapter=a, out=o))
            return [BIN, "run", jp]
        return setup
    ok_variant = '[[variant]]\nname = "v1"\nadapter = "{adapter}"\n'
    add("job: TOML syntax error", job('base = "{base}"\nout = "{out}"\nformats = ["safetensors"\n' + ok_variant), 3,
        ["job.toml", "line 4", "array"])
    add("job: unknown key", job('base = "{base}"\nout = "{out}"\nformatz = ["safetensors"]\n' + ok_variant), 2,
        ["job.toml", "formatz", "unknown key"])
    add("job: missing base", job('out = "{out}"\n' + ok_variant), 2, ["job.toml", "base"])
    add("job: no variant", job('base = "{base}"\nout = "{out}"\n'), 2, ["job.toml", "variant"])
    add("job: duplicate variant name", job('base = "{base}"\nout = "{out}"\n' + ok_variant + ok_variant), 2,
        ["job.toml", "v1", "used twice"])
    add("job: bad format", job('base = "{base}"\nout = "{out}"\n' + ok_variant + 'formats = ["gguf-zip"]\n'), 2,
        ["job.toml", "variant[0].formats", "gguf-zip"])
    add("job: wrong value type", job('base = "{base}"\nout = "{out}"\n' + ok_variant + 'weight = "high"\n'), 2,
        ["job.toml", "variant[0].weight", "number"])
    add("job: variant name with a path", job('base = "{base}"\nout = "{out}"\n[[variant]]\nname = "../x"\n'), 2,
        ["job.toml", "../x", "plain name"])
    add("job: two variants write one file",
        job('base = "{base}"\n[[variant]]\nname = "a"\nout = "{out}"\n[[variant]]\nname = "b"\nout = "{out}"\n'), 2,
        ["model.safetensors", "'a' and 'b' both write"])
    add("job: missing adapter dir", job('base = "{base}"\nout = "{out}"\n[[variant]]\nname = "v"\nadapter = "{adapter}-nope"\n'),
        3, ["adapter-nope", "variant 'v'"])
    def nan_in_second_variant(b, a, o, args):  # the merge of a fused item's second variant fails at run time
        a2 = a + "2"; shutil.copytree(a, a2)
        nan_adapter(b, a2, o, args)
        return job('base = "{base}"\nout = "{out}"\nformats = ["safetensors", "gguf:q8_0"]\n' + ok_variant +
                   '[[variant]]\nname = "v2"\nadapter = "{adapter}2"\n')(b, a, o, args)
    add("job: NaN after merge in a variant", nan_in_second_variant, 3, ["down_proj"])
    return c

def main():
    fails, n = [], 0
    for a, k in cases():
        n += 1
        r = run_case(*a, **k)
        print(("FAIL " + r) if r else f"ok   {a[0]}")
        if r: fails.append(r)
    print(f"bad-input corpus: {n - len(fails)} passed, {len(fails)} failed")
    sys.exit(1 if fails else 0)

main()
