"""Reads a bitsandbytes 4-bit checkpoint directory the way transformers does (bitsandbytes' QuantState and
dequantize_4bit; transformers' utils/quantization_config.py) and dequantizes it with numpy: independent of the C++
code and of bnb_ref.py's quantizer.

load(dir) -> (tensors, info): tensors maps every model parameter name to (dtype, float32 array) — the 4-bit
weights dequantized to their quant_state dtype (values as exact f32 widenings), other tensors as stored;
info maps each 4-bit weight to its parsed quant_state dict. Raises AssertionError on anything transformers would
reject: a Linear-like weight without quant state that llm_int8_skip_modules does not cover, quant-state
components in another shard than their weight, wrong shapes/dtypes, unparsable JSON.
"""
import json
import os
import re

import numpy as np

import st_io


def _round(arr, dtype):
    if dtype == "bfloat16":
        return st_io.bf16_bits_to_f32(st_io.f32_to_bf16_bits(arr))
    if dtype == "float16":
        return arr.astype(np.float16).astype(np.float32)
    assert dtype == "float32", dtype
    return arr.astype(np.float32)


def _files(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        return sorted(set(wm.values())), wm
    return ["model.safetensors"], None


def _skipped(module, skip):
    # transformers (new) should_convert_module: re.match(k + "\\.", n) or re.match(k, n) or n.endswith(k)
    return any(re.match(re.escape(k), module) or module.endswith(k) for k in skip)


def load(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    qc = cfg["quantization_config"]
    assert qc["quant_method"] == "bitsandbytes" and qc["load_in_4bit"] is True and qc["load_in_8bit"] is False
    skip = qc.get("llm_int8_skip_modules") or ["lm_head"]
    files, wm = _files(d)
    out, info = {}, {}
    for fn in files:
        shard = st_io.read(os.path.join(d, fn))
        if wm is not None:
            assert all(wm[k] == fn for k in shard), f"{fn}: index does not list its tensors"
        states = [k for k in shard if re.search(r"\.quant_state\.bitsandbytes__(nf4|fp4)$", k)]
        owned = set()
        for sk in states:
            param = sk[:sk.index(".quant_state.")]          # "<P>.weight"
            comps = {k[len(param) + 1:].split(".")[-1]: shard[k] for k in shard if k.startswith(param + ".")}
            owned.update(k for k in shard if k.startswith(param + ".") or k == param)
            dt, raw = shard[sk]
            assert dt == "U8" and raw.ndim == 1, sk
            qs = json.loads(bytes(raw).decode("utf-8"))      # json.loads ignores trailing whitespace
            qtype = sk.rsplit("__", 1)[1]
            assert qs["quant_type"] == qtype == qc["bnb_4bit_quant_type"], sk
            shape = qs["shape"]
            n = int(np.prod(shape))
            bs = qs["blocksize"]
            nb = -(-n // bs)
            wdt, w = shard[param]
            assert wdt == "U8" and list(w.shape) == [(n + 1) // 2, 1], f"{param}: {wdt} {w.shape}"
            qmap = comps["quant_map"][1]
            assert comps["quant_map"][0] == "F32" and qmap.shape == (16,)
            adt, absmax = comps["absmax"]
            assert absmax.shape == (nb,), param
            nested = "nested_offset" in qs
            assert nested == bool(qc["bnb_4bit_use_double_quant"]), param
            if nested:
                assert adt == "U8" and qs["nested_blocksize"] == 256 and qs["nested_dtype"] == "float32"
                nmap = comps["nested_quant_map"][1]
                nabs = comps["nested_absmax"][1]
                assert nmap.shape == (256,) and nabs.shape == (-(-nb // 256),)
                off = np.float32(qs["nested_offset"])
                am = (nmap[absmax] * np.repeat(nabs, 256)[:nb]).astype(np.float32)
                am = (am + off).astype(np.float32)
            else:
                assert adt == "F32"
                am = absmax
            packed = w.reshape(-1)
            c = np.empty(packed.size * 2, dtype=np.uint8)
            c[0::2] = packed >> 4
            c[1::2] = packed & 15
            vals = (qmap[c[:n]] * np.repeat(am, bs)[:n]).astype(np.float32)
            out[param] = (qs["dtype"], _round(vals, qs["dtype"]).reshape(shape))
            info[param] = qs
        for k, v in shard.items():
            if k in owned:
                continue
            module = k[:-len(".weight")] if k.endswith(".weight") else k
            if v[1].ndim == 2 and k.endswith(".weight") and not re.search(r"(embed|norm)[^.]*$", module):
                assert _skipped(module, skip), f"{k}: unquantized Linear not covered by llm_int8_skip_modules"
            out[k] = v
    return out, info
