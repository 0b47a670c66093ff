#!/usr/bin/python3
"""Architecture conformance: our GGUF files, read by llama.cpp, compute what the Hugging Face model computes.

    gguf_logits.py logits    --shardforge BIN --work DIR --arch ARCH
    gguf_logits.py split     --shardforge BIN --work DIR --arch ARCH
    gguf_logits.py mpi       --shardforge BIN --work DIR --arch ARCH --mpiexec MPIEXEC [--mpiflags "..."]
    gguf_logits.py tokenizer --shardforge BIN --work DIR

logits:    `shardforge demo --arch ARCH` -> export with the LoRA merged (gguf:f32,f16,q8_0; + bf16 for llama) and
           once without it (gguf:f32) -> llama.cpp logits (tests/conformance/llama_eval.mjs) vs the independent numpy
           forward pass (tests/reference/forward.py) on two token lists; per-type tolerances (conformance README);
           the LoRA must move logits visibly, in the reference and in llama.cpp.
split:     the same export split into 3 files (--split-max-tensors), and by size (--split-max-size, gguf-split's
           greedy rule on padded tensor bytes), gives bit-identical llama.cpp logits (llama.cpp loads the first file).
mpi:       export (merged; f32, bf16, q8_0, q4_k_m, and a 3-file split) at mpirun -np 1 and -np 3: equal sha256.
tokenizer: llama.cpp's ids from our GGUF == tests/reference/bpe_tokenize.py's ids from tokenizer.json, exactly,
           plain and with --special.
Exit 0 pass, 1 fail, 77 skip (the reason is printed; ctest reports it as skipped, never as passed).
"""
import argparse
import hashlib
import json
import math
import os
import shlex
import shutil
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.dirname(HERE)                                   # tests/conformance
REF = os.path.join(os.path.dirname(CONF), "reference")         # tests/reference
MISSING = 1   # a missing peer (installed by jobs/install-deps.sh --test) is a failure, never a skip

try:
    import numpy as np
except ImportError:
    print("FAIL: numpy is not importable by this interpreter (use /usr/bin/python3 with python3-numpy)")
    sys.exit(MISSING)

# Demo shapes: small enough that the whole conformance run stays within minutes on 2 cores. Gemma3 gets 6 layers
# so that its sliding-window pattern (5 local, 1 global) has a global layer; Qwen3.5 4 for its full-attention one.
DEMO_ARGS = ["--hidden", "256", "--intermediate", "256", "--vocab", "640", "--heads", "8", "--kv-heads", "2",
             "--shards", "2"]
LAYERS = {"gemma3": 6, "qwen35": 4, "qwen35moe": 4, "qwen3next": 4,  # qwen35*, qwen3next: 3 linear-attention layers,
          # then a full-attention one; gemma4: sliding, full, then a KV-shared sliding and full layer (gemma4moe: 2)
          "gemma4": 4,
          "deepseek2": 3,  # deepseek2: a dense layer, then two MoE ones
          "llama4": 4,  # llama4: chunked rope layers 0-2 (1 MoE, 0 and 2 dense), NoPE full-attention MoE layer 3
          # gemma3n: 3 sliding layers and a full one, activation sparsity in each. Not KV sharing: llama.cpp computes KV
          # in the first 20 layers whatever the config says (src/models/gemma3n.cpp), and over 22 layers ggml's f16
          # GELU table and the sparsity cut amplify rounding past the bounds (12 layers: 5e-3)
          "gemma3n": 4}
# Token lists that also cross llama.cpp's gated delta-net chunks (64 tokens, src/models/delta-net-base.cpp) twice.
# Llama 4: past the 8192-token attention chunk and the attention temperature's floor scale (8192), both constants in
# llama.cpp's src/models/llama4.cpp (the demo's config sets the same values), 64 tokens into the second chunk.
CHUNKED = {"qwen3next": 150, "llama4": 8256}

# max |Δlogit| for F32 / F16 GGUFs (and the unmerged base) against forward.py: 1e-5 where llama.cpp computes in
# f32 throughout (measured <= 3e-7); Gemma's GELU goes through ggml's f16 lookup table (measured 3e-5), and Gemma2/3's
# post-feed-forward norm rescales that error to the norm's output (measured 4.5e-4; Gemma 4 8.2e-4).
# gpt-oss-mxfp4: the experts stay MXFP4 in every GGUF (as the converter writes them) and ggml's CPU MXFP4 matmul
# quantizes the activations to Q8_0 blocks (vec_dot_type), measured 3.1e-3; the GGUF bytes themselves are checked
# against the converter's repacking in conformance.converter.
# llama4: 8256 tokens, the NoPE layer's f32 softmax over up to 8256 keys, measured 1.4e-5 (4 and 61 tokens: 3.6e-7).
# gemma3-vl: the gemma3 text model (measured 2.8e-4); its tower is reference.mmproj's.
TIGHT = {"gemma": 1e-3, "gemma2": 2e-3, "gemma3": 2e-3, "gemma4": 2e-3, "gemma4moe": 2e-3, "gpt-oss-mxfp4": 5e-3,
         "llama4": 5e-5, "gemma3-vl": 2e-3, "gemma3n": 2e-3}
TIGHT_DEFAULT = 1e-5
# F16: ggml's CPU matmul converts the activations to f16 for F16 weights (f16's unit roundoff is 4.9e-4 relative;
# measured 1.4e-5 dense and 1.3e-4 MoE on one AVX2 CPU, up to 6.3e-4 on Qwen3 on an AVX-512 AMD EPYC, whose ggml
# kernels differ). A missing or wrong merge moves logits by >= LORA_MIN_EFFECT (measured 0.4 on Qwen3), far above it.
F16_EXTRA = 1e-3
# Qwen3.5's gated delta-net is more sensitive to its weights: rounding the merged weights to f16 in forward.py itself
# (float64 math) moves the demo's logits by 1.9e-3 (4 tokens) and 4.4e-3 (61 tokens); llama.cpp measured 1.1e-3 and
# 1.4e-3. A wrong merge or V-head order moves them by >= 0.6.
# Gemma 4 (attention scale 1 on q/k-normed heads: sharp attention): f16-rounded weights in forward.py itself move
# the 61-token logits by 3.2e-3 (llama.cpp measured 3.6e-3); a wrong merge moves them by >= 0.5.
# DeepSeek2's MLA chains more f16-activation matmuls per layer (q_a, q_b, kv_a, the absorbed k_b, v_b): llama.cpp
# measured 1.0e-3 (4 tokens) and 1.6e-3 (61 tokens); rounding every F16-stored weight in forward.py too changes that
# by < 1e-4, so it is the activations. A wrong merge moves the logits by >= 0.3, a wrong MLA split or routing more.
# MiniMax-M2: F16 activations into the full-width q/k norms and every layer's experts: llama.cpp measured 4.9e-4
# (4 tokens) and 5.4e-4 (61 tokens) on one AVX2 CPU, half the default bound; other CPUs' kernels get the room
# Qwen3 needed on AVX-512. A missing merge moves the logits by >= 0.2.
F16_EXTRA_ARCH = {"qwen35": 5e-3, "qwen35moe": 5e-3, "qwen3next": 5e-3, "gemma4": 5e-3, "deepseek2": 5e-3,
                  "minimax-m2": 2e-3}
# Q8_0: max |dlogprob|, KL, and how far below the reference's top logit llama.cpp's argmax may be (0: the same
# token). Qwen3.5-MoE: rounding the merged weights to Q8_0 in forward.py itself (float64 math, f16 block scales)
# moves the demo's 61-token log-probs by 0.144; llama.cpp measured 0.187 (it also quantizes the activations), and
# swapped the reference's top two tokens, 0.08 apart.
# Qwen3-Next: llama.cpp measured 0.099 (61 tokens) and 0.093 (4 tokens), with a near tie among the top three.
# Gemma 4: Q8_0-rounded weights in forward.py move the 61-token log-probs by 0.164; llama.cpp measured 0.158
# (KL 1.3e-3), same top token.
Q8_BOUNDS = {"qwen35moe": (0.3, 5e-3, 0.1), "qwen3next": (0.2, 2e-3, 0.1), "gemma4": (0.3, 5e-3, 0.0)}
Q8_DEFAULT = (0.1, 1e-3, 0.0)
# max |Δlogit| the adapter must cause, and at least 10x the F32 tolerance (measured 0.039 on Gemma, else 0.3 ... 1.3)
LORA_MIN_EFFECT = 0.02


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(cmd, **kw):
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        fail(f"command failed ({p.returncode}): {shlex.join(cmd)}\n--- stdout\n{p.stdout[-3000:]}\n"
             f"--- stderr\n{p.stderr[-3000:]}")
    if os.environ.get("SF_CONFORMANCE_VERBOSE"):
        print(f"  [{time.time() - t0:5.1f}s] {shlex.join(cmd)}")
    return p.stdout


def need_node():
    node = shutil.which("node")
    if not node:
        print("FAIL: node is not on PATH (llama.cpp is reached through node-llama-cpp)")
        sys.exit(MISSING)
    if not os.path.isdir(os.path.join(CONF, "node_modules", "node-llama-cpp")):
        print(f"FAIL: {CONF}/node_modules/node-llama-cpp is missing (jobs/install-deps.sh --test)")
        sys.exit(MISSING)
    return node


def llama_logits(node, models, seqs):
    """{(model, tuple(tokens)): logits ndarray} from one llama_eval.mjs process."""
    out = run([node, os.path.join(CONF, "llama_eval.mjs"), *models,
               "--tokens", ";".join(",".join(map(str, s)) for s in seqs)])
    res = {}
    for line in out.splitlines():
        j = json.loads(line)
        res[(j["model"], tuple(j["tokens"]))] = np.asarray(j["logits"], dtype=np.float64)
    if len(res) != len(models) * len(seqs):
        fail(f"llama_eval.mjs returned {len(res)} results, expected {len(models) * len(seqs)}")
    return res


sys.path.insert(0, REF)
import forward as fwd  # noqa: E402  (tests/reference/forward.py, used in-process: weights read once)

_weights = {}


def reference(model_dir, tokens, lora=None, lora_round="none"):
    """Last-position logits of forward.py (float64), optionally with the adapter merged (and rounded)."""
    key = (model_dir, lora, lora_round)
    if key not in _weights:
        w = fwd.read_weights(model_dir)
        if lora:
            fwd.merge_lora(w, lora, 1.0, lora_round)
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = fwd.Config(json.load(f))
        # Gemma 3n's activation sparsity: transformers cuts the gate at mean + icdf(p) * std with the population std,
        # llama.cpp with the sample std (src/models/gemma3n.cpp gaussian_topk, 1 / (n - 1)); the demo's logits move
        # by 1.2e-2 between the two, so the reference takes llama.cpp's (docs/formats.md, Gemma 3n).
        if cfg.model_type in ("gemma3n_text", "gemma3n"):
            cfg.sparsity_ddof = 1
        _weights[key] = (cfg, w)
    cfg, w = _weights[key]
    return np.asarray(fwd.forward(cfg, w, tokens)[-1], dtype=np.float64)


def log_softmax(z):
    m = z.max()
    return z - m - math.log(np.exp(z - m).sum())


def kl(ref, got):
    p = np.exp(log_softmax(ref))
    return float((p * (log_softmax(ref) - log_softmax(got))).sum())


def demo(sf, work, arch, name="m"):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    run([sf, "demo", d, "--arch", arch, "--layers", str(LAYERS.get(arch, 2)), *DEMO_ARGS])
    return d


def token_lists(model_dir, arch=None):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    if isinstance(c.get("text_config"), dict):  # Mistral3ForConditionalGeneration: ids in generation_config.json
        c = {**c, **c["text_config"]}
    if "bos_token_id" not in c:
        with open(os.path.join(model_dir, "generation_config.json")) as f:
            c["bos_token_id"] = json.load(f)["bos_token_id"]
    bos, vocab = c["bos_token_id"], c["vocab_size"]
    short = [bos, 100, 200, 300]
    # 61 ids spread over the vocabulary (specials excluded): rotary positions up to 60, past the demo's
    # sliding window of 16 (Gemma2/3).
    long = [bos] + [(37 * i + 11) % (vocab - 10) for i in range(60)]
    if arch not in CHUNKED:
        return [short, long]
    return [short, long, [bos] + [(53 * i + 7) % (vocab - 10) for i in range(CHUNKED[arch] - 1)]]


def gguf_file(out_dir, type_name):
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(f".{type_name}.gguf"))
    if len(files) != 1:
        fail(f"{out_dir}: expected one *.{type_name}.gguf, found {files}")
    return os.path.join(out_dir, files[0])


def n_tensors(path):
    with open(path, "rb") as f:
        magic, _version, n = struct.unpack("<4sIQ", f.read(16))
    if magic != b"GGUF":
        fail(f"{path}: not a GGUF file")
    return n


# ---------------------------------------------------------------- modes
def mode_logits(a):
    node = need_node()
    sf, arch = a.shardforge, a.arch
    d = demo(sf, a.work, arch)
    base, adapter = os.path.join(d, "base"), os.path.join(d, "adapter")
    types = ["F32", "F16", "Q8_0"] + (["BF16"] if arch == "llama" else [])
    out_lora, out_base = os.path.join(d, "out_lora"), os.path.join(d, "out_base")
    run([sf, "export", "--base", base, "--adapter", adapter, "--out", out_lora,
         "--format", ",".join("gguf:" + t.lower() for t in types)])
    run([sf, "export", "--base", base, "--out", out_base, "--format", "gguf:f32"])
    ggufs = {t: gguf_file(out_lora, t) for t in types}
    ggufs["base"] = gguf_file(out_base, "F32")
    seqs = token_lists(base, arch)
    ll = llama_logits(node, list(ggufs.values()), seqs)

    tight = TIGHT.get(arch, TIGHT_DEFAULT)
    problems, rows = [], []

    def check(what, ok, detail):
        rows.append(f"  {'ok  ' if ok else 'FAIL'} {what}: {detail}")
        if not ok:
            problems.append(what)

    for seq in seqs:
        tag = f"{len(seq)} tokens"
        r_base = reference(base, seq)
        r_lora = reference(base, seq, adapter)
        r_f16 = reference(base, seq, adapter, "f16")
        got = {t: ll[(p, tuple(seq))] for t, p in ggufs.items()}
        # exact-ish types
        for t, ref in (("F32", r_lora), ("F16", r_f16), ("base", r_base)):
            d_max = float(np.abs(got[t] - ref).max())
            tol = tight + (F16_EXTRA_ARCH.get(arch, F16_EXTRA) if t == "F16" else 0.0)
            check(f"{t} {tag} max|dlogit|", d_max <= tol and int(got[t].argmax()) == int(ref.argmax()),
                  f"{d_max:.3g} (<= {tol:g}, |logit| max {np.abs(ref).max():.3g}, argmax {got[t].argmax()} vs "
                  f"{ref.argmax()})")
        if "BF16" in got:
            ref = reference(base, seq, adapter, "bf16")
            d_lp = float(np.abs(log_softmax(got["BF16"]) - log_softmax(ref)).max())
            k = kl(ref, got["BF16"])
            check(f"BF16 {tag}", d_lp <= 2e-2 and k <= 1e-4, f"max|dlogprob| {d_lp:.3g} (<= 2e-2), KL {k:.3g} (<= 1e-4)")
        d_lp = float(np.abs(log_softmax(got["Q8_0"]) - log_softmax(r_lora)).max())
        k = kl(r_lora, got["Q8_0"])
        order = np.argsort(-r_lora)
        top_ref, top_got = set(order[:3].tolist()), set(np.argsort(-got["Q8_0"])[:3].tolist())
        # top-3 sets equal, except for tokens tied with the reference's 3rd within 0.02 (quantization may swap them)
        third = r_lora[order[2]]
        swapped = [t for t in top_ref ^ top_got if abs(r_lora[t] - third) > 0.02]
        lp_max, kl_max, tie = Q8_BOUNDS.get(arch, Q8_DEFAULT)
        a_got = int(got["Q8_0"].argmax())
        top1 = a_got == int(order[0]) or r_lora[order[0]] - r_lora[a_got] <= tie
        check(f"Q8_0 {tag}", d_lp <= lp_max and k <= kl_max and top1 and not swapped,
              f"max|dlogprob| {d_lp:.3g} (<= {lp_max:g}), KL {k:.3g} (<= {kl_max:g}), top-3 {sorted(top_got)} vs "
              f"{sorted(top_ref)}"
              f"{' (near tie)' if top_ref != top_got and not swapped else ''}")
        e_ref = float(np.abs(r_lora - r_base).max())
        e_ll = float(np.abs(got["F32"] - got["base"]).max())
        need = max(LORA_MIN_EFFECT, 10 * tight)
        check(f"LoRA effect {tag}", e_ref >= need and e_ll >= need,
              f"reference {e_ref:.3g}, llama.cpp {e_ll:.3g} (>= {need:g})")
    print(f"{arch}: llama.cpp vs forward.py")
    print("\n".join(rows))
    if problems:
        fail(f"{arch}: " + ", ".join(problems))
    print(f"PASS {arch}")


def mode_split(a):
    node = need_node()
    sf, arch = a.shardforge, a.arch
    d = demo(sf, a.work, arch, "split")
    base, adapter = os.path.join(d, "base"), os.path.join(d, "adapter")
    one, three = os.path.join(d, "one"), os.path.join(d, "three")
    run([sf, "export", "--base", base, "--adapter", adapter, "--out", one, "--format", "gguf:f32"])
    single = gguf_file(one, "F32")
    n = n_tensors(single)
    per = -(-n // 3)
    if -(-n // per) != 3:
        fail(f"{n} tensors cannot be split into 3 files of at most {per}")
    run([sf, "export", "--base", base, "--adapter", adapter, "--out", three, "--format", "gguf:f32",
         "--split-max-tensors", str(per)])
    parts = sorted(p for p in os.listdir(three) if p.endswith(".gguf"))  # a Modelfile is written beside them
    if len(parts) != 3 or not all(p.endswith(f"-0000{i + 1}-of-00003.gguf") for i, p in enumerate(parts)):
        fail(f"expected 3 split files, found {parts}")
    total = sum(n_tensors(os.path.join(three, p)) for p in parts)
    if total != n:
        fail(f"split files hold {total} tensors, the single file {n}")
    # --split-max-size: gguf-split starts a new file when the next tensor's data, padded to the alignment, would
    # take the current file's tensor data past the limit (a tensor larger than the limit gets a file of its own).
    sys.path.insert(0, os.path.join(CONF, "quantize"))
    from compare_gguf import parse as parse_gguf  # the independent GGUF reader
    align = 32
    padded = lambda nbytes: -(-nbytes // align) * align
    data_size = os.path.getsize(single) - parse_gguf(single)["data_start"]
    limit_k = -(-data_size // 3 // 1000)  # decimal K, as gguf-split: at least 3 files
    by_size = os.path.join(d, "by_size")
    run([sf, "export", "--base", base, "--adapter", adapter, "--out", by_size, "--format", "gguf:f32",
         "--split-max-size", f"{limit_k}K"])
    sparts = sorted(p for p in os.listdir(by_size) if p.endswith(".gguf"))
    if len(sparts) < 3 or not all(p.endswith(f"-{i + 1:05d}-of-{len(sparts):05d}.gguf") for i, p in enumerate(sparts)):
        fail(f"--split-max-size {limit_k}K of {data_size} tensor bytes: expected >= 3 split files, found {sparts}")
    parsed = [parse_gguf(os.path.join(by_size, p)) for p in sparts]
    if sum(len(g["tensors"]) for g in parsed) != n:
        fail(f"--split-max-size files hold {sum(len(g['tensors']) for g in parsed)} tensors, the single file {n}")
    for k, g in enumerate(parsed):
        used = sum(padded(len(t["data"])) for t in g["tensors"])
        if used > limit_k * 1000 and len(g["tensors"]) > 1:
            fail(f"{sparts[k]}: {used} tensor bytes exceed --split-max-size {limit_k}K")
        if k + 1 < len(parsed):
            nxt = min(parsed[k + 1]["tensors"], key=lambda t: t["off"])
            if used + padded(len(nxt["data"])) <= limit_k * 1000:
                fail(f"{sparts[k]}: {nxt['name']} would still fit under {limit_k}K (gguf-split fills each file)")
    seqs = token_lists(base)
    first = os.path.join(three, parts[0])
    first_by_size = os.path.join(by_size, sparts[0])
    ll = llama_logits(node, [single, first, first_by_size], seqs)
    for seq in seqs:
        x = ll[(single, tuple(seq))]
        for what, m in (("--split-max-tensors", first), ("--split-max-size", first_by_size)):
            y = ll[(m, tuple(seq))]
            if not np.array_equal(x, y):
                fail(f"{len(seq)} tokens: {what} logits differ from the single file by {np.abs(x - y).max():.3g}")
    print(f"PASS {arch}: {n} tensors in 3 files ({per} max each) and in {len(sparts)} files of <= {limit_k}K, "
          "llama.cpp logits bit-identical to the single file")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def mode_mpi(a):
    sf, arch = a.shardforge, a.arch
    if not a.mpiexec:
        print("FAIL: no mpiexec was found by CMake (MPIEXEC_EXECUTABLE is empty)")
        sys.exit(MISSING)
    d = demo(sf, a.work, arch, "mpi")
    base, adapter = os.path.join(d, "base"), os.path.join(d, "adapter")
    flags = shlex.split(a.mpiflags or "")
    digests = {}
    for np_ in (1, 3):
        for split in (False, True):
            out = os.path.join(d, f"np{np_}{'_split' if split else ''}")
            cmd = [a.mpiexec, "-np", str(np_), *flags, sf, "export", "--base", base, "--adapter", adapter,
                   "--out", out, "--format", "gguf:f32,gguf:bf16,gguf:q8_0,gguf:q4_k_m" if not split else "gguf:q8_0"]
            if split:
                cmd += ["--split-max-tensors", "8"]
            run(cmd)
            for f in sorted(os.listdir(out)):
                digests.setdefault((split, f), {})[np_] = sha256(os.path.join(out, f))
    bad = [f"{f}: np1 {v.get(1)} np3 {v.get(3)}" for (s, f), v in digests.items() if v.get(1) != v.get(3)]
    if bad:
        fail("outputs differ between -np 1 and -np 3:\n  " + "\n  ".join(bad))
    if len(digests) < 5:
        fail(f"expected at least 5 output files, got {sorted(digests)}")
    print(f"PASS {arch}: {len(digests)} GGUF files identical at -np 1 and -np 3")
    for (s, f), v in sorted(digests.items()):
        print(f"  {v[1][:16]}  {f}")


# The README's string list: ASCII prose, contractions in both cases, digit runs 1..7, whitespace runs, tabs, CRLF,
# blank lines, trailing spaces, Latin-1 / Greek / Cyrillic / CJK / Arabic-Indic digits, emoji, NBSP and other
# Unicode spaces, punctuation runs, special tokens as text.
TEXTS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "it's I'M you'll WE'LL they've THEY'VE he'd SHE'D 's 'S 'Ll 'VE 't 're",
    "1 12 123 1234 12345 123456 1234567",
    "version 3.14159 and 2026-11-22",
    "a  b   c    d",
    "tab\there\t\tand\t",
    "line1\r\nline2\r\n",
    "para\n\n\nnext",
    "trailing spaces   ",
    "   leading spaces",
    " ",
    "\n",
    "",
    "caf\u00e9 na\u00efve \u00fcber \u00c5ngstr\u00f6m",
    "\u0391\u03b8\u03ae\u03bd\u03b1 \u03ba\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    "\u4f60\u597d\uff0c\u4e16\u754c\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "\u0661\u0662\u0663\u0664 \u06f1\u06f2\u06f3",
    "emoji \U0001F600\U0001F680 \U0001F469\u200d\U0001F4BB!",
    "nbsp\u00a0here\u2003em\u2009thin\u3000ideo",
    "!!! ??? ... --- *** ((())) {[]} <<>>",
    "x=a+b*c/d; y<=z && w!=v || u",
    "<|begin_of_text|>Hello<|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "plain <|end_of_text|> text <|reserved_special_token_0|>",
]


def mode_tokenizer(a):
    node = need_node()
    d = demo(a.shardforge, a.work, "llama", "tok")
    base = os.path.join(d, "base")
    out = os.path.join(d, "out")
    run([a.shardforge, "export", "--base", base, "--out", out, "--format", "gguf:f32"])
    gguf = gguf_file(out, "F32")
    texts_path = os.path.join(d, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(TEXTS, f, ensure_ascii=False)
    n_bad, n = 0, 0
    for special in (False, True):
        extra = ["--special"] if special else []
        ours = [json.loads(x) for x in run([sys.executable, os.path.join(REF, "bpe_tokenize.py"),
                                            os.path.join(base, "tokenizer.json"), "--file", texts_path, *extra]).splitlines()]
        theirs = [json.loads(x) for x in run([node, os.path.join(CONF, "llama_eval.mjs"), gguf,
                                              "--tokenize-file", texts_path, *extra]).splitlines()]
        if len(ours) != len(TEXTS) or len(theirs) != len(TEXTS):
            fail(f"got {len(ours)} / {len(theirs)} results for {len(TEXTS)} strings")
        for text, o, t in zip(TEXTS, ours, theirs):
            n += 1
            if o["ids"] != t["ids"]:
                n_bad += 1
                print(f"  MISMATCH{' (--special)' if special else ''} {text!r}\n    bpe_tokenize.py {o['ids']}\n"
                      f"    llama.cpp       {t['ids']}")
    if n_bad:
        fail(f"{n_bad} of {n} tokenizations differ")
    print(f"PASS: {n} tokenizations ({len(TEXTS)} strings, plain and --special) identical")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["logits", "split", "mpi", "tokenizer"])
    ap.add_argument("--shardforge", required=True)
    ap.add_argument("--work", required=True, help="scratch directory (recreated)")
    ap.add_argument("--arch", default="llama")
    ap.add_argument("--mpiexec", default="")
    ap.add_argument("--mpiflags", default="")
    a = ap.parse_args()
    a.work = os.path.abspath(a.work)
    os.makedirs(a.work, exist_ok=True)
    t0 = time.time()
    {"logits": mode_logits, "split": mode_split, "mpi": mode_mpi, "tokenizer": mode_tokenizer}[a.mode](a)
    print(f"({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
