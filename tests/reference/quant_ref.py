#!/usr/bin/python3
"""Independent numpy reference for quantized bases, written from bitsandbytes/functional.py and the
FP8 checkpoint conventions (not from the C++ code). numpy only.

    quant_ref.py make LAYOUT SRC_MODEL_DIR OUT_DIR [--extras]
        Quantizes every decoder Linear weight (q/k/v/o/gate/up/down_proj; never embeddings, norms or lm_head) of a
        bf16 Hugging Face model into LAYOUT and writes OUT_DIR (config.json with quantization_config, tokenizer
        files copied, one model.safetensors). --extras adds tensors with odd element counts / rows crossing blocks
        (safetensors-only checks; they have no GGUF mapping).
    quant_ref.py dequant QUANT_DIR OUT_DIR
        Dequantizes a checkpoint written by `make` (or any checkpoint in these layouts) into a plain model: every
        dequantized weight as F32 (the exact values), everything else unchanged, auxiliary tensors dropped.

Layouts:
    nf4       bnb 4-bit NF4, blocksize 64, f32 absmax, U8 storage
    nf4dq     NF4 with double quantization (U8 absmax codes, nested blocksize 256); q_proj uses BF16 quant_storage,
              the nested map's entry 0 is -1.0 (the bnb 0.45-0.49 CPU checkpoints; see create_dynamic_map):
              readers must use the stored map
    fp4       bnb 4-bit FP4, blocksize 64, F32 storage for o_proj, and the *rounded* FP4 quant_map that bnb 0.47-0.49's
              pure-torch backend stored (0.0052, 0.6667, 0.3333, 0.1667; see get_4bit_type): readers must use it
    int8      LLM.int8: I8 weight + F32 SCB + U8 weight_format
    fp8block  F8_E4M3 + F32 weight_scale_inv in 128x128 blocks (DeepSeek-V3; partial edge blocks when a dimension
              is not a multiple of 128)
    fp8chan   F8_E4M3 + weight_scale per output channel [out, 1] (FBGEMM / compressed-tensors); k_proj per-tensor [1]
    fp8ctblk  compressed-tensors FP8 "block" strategy: weight_scale as a 2-D grid, config_groups block_structure 64x128

Dequantization (the recipe both sides implement, in fp32 with one rounding per operation):
    bnb 4-bit: element k in byte k//2, even k high nibble; absmax block = k // blocksize (flat, crossing rows);
               double quant: absmax = f32(f32(nested_map[code] * nested_absmax[b // 256]) + f32(nested_offset));
               w = f32(quant_map[nibble] * absmax), then one RNE rounding to the quant_state's dtype.
    int8:      w = f32(f32(cb * SCB[row]) * f32(7.874015718698502e-3)).
    FP8:       w = f32(e4m3(x) * scale[r // br, c // bc]) (E4M3FN: bias 7, subnormals m * 2^-9, 0x7f/0xff NaN).
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_io  # noqa: E402

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
F32 = np.float32

# ---------------------------------------------------------------- raw safetensors (any dtype, bytes kept)
_ITEM = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
         "F8_E4M3": 1, "F8_E5M2": 1}


def read_raw(path):
    """-> {name: (dtype, shape, bytes)}"""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], tuple(v["shape"]), data[b:e])
    return out


def read_dir_raw(d):
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out.update(read_raw(os.path.join(d, f)))
    return out


def write_raw(path, tensors):
    """tensors: {name: (dtype, shape, bytes)}, written in name order."""
    hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        dt, shape, blob = tensors[name]
        n = 1
        for s in shape:
            n *= s
        assert len(blob) == n * _ITEM[dt], (name, dt, shape, len(blob))
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        off += len(blob)
        blobs.append(blob)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def as_f32(dt, shape, blob):
    if dt == "BF16":
        return st_io.bf16_bits_to_f32(np.frombuffer(blob, dtype="<u2")).reshape(shape)
    if dt == "F16":
        return np.frombuffer(blob, dtype="<f2").astype(F32).reshape(shape)
    if dt == "F32":
        return np.frombuffer(blob, dtype="<f4").astype(F32).reshape(shape)
    raise SystemExit(f"not a float dtype: {dt}")


def f32_raw(arr):
    a = np.ascontiguousarray(arr, dtype="<f4")
    return ("F32", a.shape, a.tobytes())


# ---------------------------------------------------------------- code tables (get_4bit_type and create_dynamic_map in
# bitsandbytes/functional.py)
NF4_HEX = ["bf800000", "bf3239b1", "bf066b30", "beca32a0", "be91a24d", "be3d353f", "bdba7871", "00000000",
           "3da2faff", "3e24cae3", "3e7c04dd", "3ead033a", "3ee1a4b8", "3f1007ab", "3f3913b3", "3f800000"]
NF4 = np.array([int(h, 16) for h in NF4_HEX], dtype=np.uint32).view(F32)
FP4 = (np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=F32) / F32(12)).astype(F32)
FP4 = np.concatenate([FP4, -FP4]).astype(F32)  # index 8 = -0.0
FP4_ROUNDED = np.array([0, 0.0052, 0.6667, 1.0, 0.3333, 0.5, 0.1667, 0.25], dtype=F32)
FP4_ROUNDED = np.concatenate([FP4_ROUNDED, -FP4_ROUNDED]).astype(F32)


def dynamic_map():
    """create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8), computed in fp32: 256 sorted values."""
    data = [F32(0.0), F32(1.0)]
    for i in range(7):
        b = np.linspace(0.1, 1, 2 ** i + 1, dtype=F32)
        means = ((b[:-1] + b[1:]) / F32(2)).astype(F32)
        scale = F32(10.0 ** (-6 + i))
        data += list((scale * means).astype(F32)) + list((-scale * means).astype(F32))
    m = np.sort(np.array(data, dtype=F32))
    assert m.size == 256
    return m


E4M3 = None


def e4m3_table():
    """value of every E4M3FN byte (NaN for 0x7f/0xff)."""
    global E4M3
    if E4M3 is None:
        v = np.zeros(256, dtype=np.float64)
        for b in range(256):
            s, e, m = b >> 7, (b >> 3) & 15, b & 7
            if e == 15 and m == 7:
                x = np.nan
            elif e == 0:
                x = m * 2.0 ** -9
            else:
                x = (1 + m / 8) * 2.0 ** (e - 7)
            v[b] = -x if s else x
        E4M3 = v.astype(F32)
    return E4M3


def to_e4m3(x):
    """f32 -> E4M3FN bytes: nearest, ties to the even code, saturating at 448."""
    t = e4m3_table()
    pos = t[:127].astype(np.float64)          # 0x00 .. 0x7e, ascending
    a = np.minimum(np.abs(x.astype(np.float64)), 448.0)
    hi = np.clip(np.searchsorted(pos, a), 0, 126)
    lo = np.clip(hi - 1, 0, 126)
    dlo, dhi = a - pos[lo], pos[hi] - a
    pick = np.where(dlo < dhi, lo, np.where(dhi < dlo, hi, np.where(lo % 2 == 0, lo, hi)))
    return (pick | np.where(x < 0, 128, 0)).astype(np.uint8)


# ---------------------------------------------------------------- quantizers (test-model generation)
def nearest_code(y, table):
    """index of the nearest table entry (ties -> the smaller value); table need not be sorted."""
    order = np.argsort(table, kind="stable")
    s = table[order].astype(np.float64)
    mids = (s[:-1] + s[1:]) / 2
    return order[np.searchsorted(mids, y.astype(np.float64), side="left")]


def quant_bnb4(w, nf4, blocksize=64, nested=False, storage="U8", odd_map=False, table=None):
    """-> (tensors dict for prefix '', quant_state json) for a [out, in] (or any) f32 array."""
    x = w.astype(F32).ravel()
    n = x.size
    nb = -(-n // blocksize)
    pad = np.zeros(nb * blocksize, dtype=F32)
    pad[:n] = x
    blocks = pad.reshape(nb, blocksize)
    absmax = np.abs(blocks).max(axis=1).astype(F32)
    y = np.clip(blocks / np.maximum(absmax, F32(1e-38))[:, None], -1, 1).astype(F32)
    table = table if table is not None else (NF4 if nf4 else FP4)
    codes = nearest_code(y.ravel(), table).astype(np.uint8)[:n]
    if n % 2:
        codes = np.concatenate([codes, np.array([7 if nf4 else 0], dtype=np.uint8)])
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    item = _ITEM[storage]
    if packed.size % item:
        packed = np.concatenate([packed, np.zeros(item - packed.size % item, dtype=np.uint8)])
    out = {".weight": (storage, (packed.size // item, 1), packed.tobytes()),
           ".weight.quant_map": f32_raw(table)}
    state = {"quant_type": "nf4" if nf4 else "fp4", "blocksize": blocksize, "dtype": "bfloat16",
             "shape": list(w.shape)}
    if nested:
        offset = F32(absmax.astype(np.float64).mean())
        c = (absmax - offset).astype(F32)
        nnb = -(-nb // 256)
        cp = np.zeros(nnb * 256, dtype=F32)
        cp[:nb] = c
        nabs = np.abs(cp.reshape(nnb, 256)).max(axis=1).astype(F32)
        dmap = dynamic_map()
        if odd_map:
            dmap = dmap.copy()
            dmap[0] = F32(-1.0)
        yy = (cp.reshape(nnb, 256) / np.maximum(nabs, F32(1e-38))[:, None]).astype(F32).ravel()[:nb]
        acodes = nearest_code(yy, dmap).astype(np.uint8)
        out[".weight.absmax"] = ("U8", (nb,), acodes.tobytes())
        out[".weight.nested_absmax"] = f32_raw(nabs)
        out[".weight.nested_quant_map"] = f32_raw(dmap)
        state.update({"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": float(offset)})
    else:
        out[".weight.absmax"] = f32_raw(absmax)
    js = json.dumps(state).encode()
    out[".weight.quant_state.bitsandbytes__" + state["quant_type"]] = ("U8", (len(js),), js)
    return out


def quant_int8(w):
    x = w.astype(np.float16).astype(F32)
    scb = np.abs(x).max(axis=1).astype(F32)
    scb = np.where(scb == 0, F32(1), scb).astype(F32)
    cb = np.rint((x * (F32(127) / scb)[:, None]).astype(F32)).astype(np.int8)
    return {".weight": ("I8", cb.shape, cb.tobytes()), ".SCB": f32_raw(scb),
            ".weight_format": ("U8", (), b"\x00")}


def quant_fp8_block(w, br=128, bc=128):
    r, c = w.shape
    gr, gc = -(-r // br), -(-c // bc)
    scale = np.zeros((gr, gc), dtype=F32)
    q = np.zeros(w.shape, dtype=np.uint8)
    for i in range(gr):
        for j in range(gc):
            blk = w[i * br:(i + 1) * br, j * bc:(j + 1) * bc].astype(F32)
            s = F32(max(float(np.abs(blk).max()), 1e-12) / 448.0)
            scale[i, j] = s
            q[i * br:(i + 1) * br, j * bc:(j + 1) * bc] = to_e4m3((blk / s).astype(F32))
    return {".weight": ("F8_E4M3", w.shape, q.tobytes()), ".weight_scale_inv": f32_raw(scale)}


def quant_fp8_channel(w, per_tensor=False):
    x = w.astype(F32)
    if per_tensor:
        s = np.array([max(float(np.abs(x).max()), 1e-12) / 448.0], dtype=F32)
        q = to_e4m3((x / s[0]).astype(F32))
        scale = s
    else:
        s = (np.maximum(np.abs(x).max(axis=1), 1e-12) / 448.0).astype(F32)
        q = to_e4m3((x / s[:, None]).astype(F32))
        scale = s.reshape(-1, 1)
    return {".weight": ("F8_E4M3", w.shape, q.tobytes()), ".weight_scale": f32_raw(scale),
            ".input_scale": f32_raw(np.array([0.5], dtype=F32))}


QCONFIG = {
    "nf4": {"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False, "_load_in_4bit": True,
            "_load_in_8bit": False, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": False,
            "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_quant_storage": "uint8",
            "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0, "llm_int8_has_fp16_weight": False,
            "llm_int8_enable_fp32_cpu_offload": False},
    "int8": {"quant_method": "bitsandbytes", "load_in_4bit": False, "load_in_8bit": True, "_load_in_4bit": False,
             "_load_in_8bit": True, "llm_int8_skip_modules": None, "llm_int8_threshold": 6.0,
             "llm_int8_has_fp16_weight": False},
    "fp8block": {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3",
                 "weight_block_size": [128, 128]},
    "fp8chan": {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0},
    "fp8ctblk": {"quant_method": "compressed-tensors", "format": "float-quantized",
                 "config_groups": {"group_0": {"targets": ["Linear"], "weights": {
                     "num_bits": 8, "type": "float", "symmetric": True, "strategy": "block",
                     "block_structure": [64, 128]}}}},
}


def quantize_tensor(layout, name, w):
    if layout == "nf4":
        return quant_bnb4(w, True)
    if layout == "nf4dq":
        return quant_bnb4(w, True, nested=True, storage="BF16" if "q_proj" in name else "U8", odd_map=True)
    if layout == "fp4":
        return quant_bnb4(w, False, storage="F32" if "o_proj" in name else "U8", table=FP4_ROUNDED)
    if layout == "int8":
        return quant_int8(w)
    if layout == "fp8block":
        return quant_fp8_block(w)
    if layout == "fp8chan":
        return quant_fp8_channel(w, per_tensor="k_proj" in name)
    if layout == "fp8ctblk":
        t = quant_fp8_block(w, 64, 128)
        t[".weight_scale"] = t.pop(".weight_scale_inv")
        return t
    raise SystemExit(f"unknown layout {layout}")


def cmd_make(layout, src, out, extras):
    os.makedirs(out, exist_ok=True)
    tensors = read_dir_raw(src)
    res = {}
    for name, (dt, shape, blob) in tensors.items():
        mod = name[:-len(".weight")] if name.endswith(".weight") else None
        if mod and mod.split(".")[-1] in LINEARS and len(shape) == 2:
            w = as_f32(dt, shape, blob)
            for sfx, t in quantize_tensor(layout, name, w).items():
                res[mod + sfx] = t
        else:
            res[name] = (dt, shape, blob)
    if extras:
        rng = np.random.default_rng(5)
        for i, shape in enumerate([(7, 9), (3, 100), (5, 13)]):   # odd counts, rows crossing blocks
            w = st_io.bf16_bits_to_f32(st_io.f32_to_bf16_bits(rng.standard_normal(shape).astype(F32) * F32(0.05)))
            for sfx, t in quantize_tensor(layout, f"extra{i}.q_proj.weight" if i == 2 else f"extra{i}",
                                          w.reshape(shape)).items():
                res[f"model.extra{i}" + sfx] = t
    write_raw(os.path.join(out, "model.safetensors"), res)
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    qc = dict(QCONFIG.get(layout) or QCONFIG["nf4"])
    if layout in ("nf4dq", "fp4"):
        qc["bnb_4bit_quant_type"] = "nf4" if layout == "nf4dq" else "fp4"
        qc["bnb_4bit_use_double_quant"] = layout == "nf4dq"
    cfg["quantization_config"] = qc
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for fn in os.listdir(src):
        if not fn.endswith(".safetensors") and fn not in ("config.json", "model.safetensors.index.json"):
            p = os.path.join(src, fn)
            if os.path.isfile(p):
                shutil.copy(p, os.path.join(out, fn))


# ---------------------------------------------------------------- dequantization (the reference)
def deq_bnb4(t, w):
    """t: raw tensors, w: weight name."""
    qs = [k for k in t if k.startswith(w + ".quant_state.bitsandbytes__")]
    assert len(qs) == 1, qs
    st = json.loads(t[qs[0]][2].decode())
    shape, bs = st["shape"], st["blocksize"]
    n = int(np.prod(shape))
    packed = np.frombuffer(t[w][2], dtype=np.uint8)
    k = np.arange(n)
    byte = packed[k // 2]
    nib = np.where(k % 2 == 0, byte >> 4, byte & 15)
    code = as_f32(*t[w + ".quant_map"])
    if "nested_offset" in st:
        acode = np.frombuffer(t[w + ".absmax"][2], dtype=np.uint8)
        nmap = as_f32(*t[w + ".nested_quant_map"])
        nabs = as_f32(*t[w + ".nested_absmax"])
        b = np.arange(acode.size)
        absmax = ((nmap[acode] * nabs[b // st["nested_blocksize"]]).astype(F32) + F32(st["nested_offset"])).astype(F32)
    else:
        absmax = as_f32(*t[w + ".absmax"])
    v = (code[nib] * absmax[k // bs]).astype(F32)
    if st["dtype"] == "bfloat16":
        v = st_io.bf16_bits_to_f32(st_io.f32_to_bf16_bits(v))
    elif st["dtype"] == "float16":
        v = v.astype(np.float16).astype(F32)
    return v.reshape(shape)


def deq_int8(t, w, p):
    dt, shape, blob = t[w]
    cb = np.frombuffer(blob, dtype=np.int8).reshape(shape).astype(F32)
    scb = as_f32(*t[p + ".SCB"]).reshape(-1)
    return ((cb * scb[:, None]).astype(F32) * F32(7.874015718698502e-3)).astype(F32)


def deq_fp8(t, w, p, block):
    dt, shape, blob = t[w]
    assert dt == "F8_E4M3"
    x = e4m3_table()[np.frombuffer(blob, dtype=np.uint8)].reshape(shape)
    r, c = shape
    if p + ".weight_scale_inv" in t:
        s = as_f32(*t[p + ".weight_scale_inv"])
        br, bc = block
        grid = s[np.arange(r)[:, None] // br, np.arange(c)[None, :] // bc]
    else:
        s = as_f32(*t[p + ".weight_scale"])
        if s.ndim == 2 and s.shape[1] != 1 and s.size != 1:      # compressed-tensors block grid
            grid = s[np.arange(r)[:, None] // block[0], np.arange(c)[None, :] // block[1]]
        else:
            s = s.reshape(-1)
            grid = (np.full((r, c), s[0], dtype=F32) if s.size == 1 else np.repeat(s[:, None], c, axis=1))
    return (x * grid).astype(F32)


def cmd_dequant(qdir, out):
    os.makedirs(out, exist_ok=True)
    t = read_dir_raw(qdir)
    with open(os.path.join(qdir, "config.json")) as f:
        qc = json.load(f).get("quantization_config", {})
    block = tuple(qc.get("weight_block_size", [128, 128]))
    for g in (qc.get("config_groups") or {}).values():
        block = tuple(g.get("weights", {}).get("block_structure", block))
    res, aux = {}, set()
    for name in t:
        if ".quant_state.bitsandbytes__" in name:
            w = name.split(".quant_state.")[0]
            res[w] = f32_raw(deq_bnb4(t, w))
            aux |= {k for k in t if k.startswith(w + ".") and k != w}
    for name, (dt, shape, blob) in t.items():
        if not name.endswith(".weight") or name in res:
            continue
        p = name[:-len(".weight")]
        if p + ".SCB" in t:
            res[name] = f32_raw(deq_int8(t, name, p))
            aux |= {p + ".SCB", p + ".weight_format"}
        elif dt == "F8_E4M3":
            res[name] = f32_raw(deq_fp8(t, name, p, block))
            aux |= {p + ".weight_scale_inv", p + ".weight_scale", p + ".input_scale"}
    for name, v in t.items():
        if name not in res and name not in aux:
            res[name] = v
    write_raw(os.path.join(out, "model.safetensors"), res)
    with open(os.path.join(qdir, "config.json")) as f:
        cfg = json.load(f)
    cfg.pop("quantization_config", None)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for fn in os.listdir(qdir):
        p = os.path.join(qdir, fn)
        if os.path.isfile(p) and not fn.endswith(".safetensors") and fn != "config.json":
            shutil.copy(p, os.path.join(out, fn))


def main():
    a = sys.argv[1:]
    if len(a) >= 4 and a[0] == "make":
        cmd_make(a[1], a[2], a[3], "--extras" in a[4:])
    elif len(a) == 3 and a[0] == "dequant":
        cmd_dequant(a[1], a[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
