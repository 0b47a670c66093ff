"""Independent numpy implementation of bitsandbytes' CPU 4-bit quantization rules, written from
bitsandbytes' sources (bitsandbytes/functional.py: packing, code tables, double quantization, QuantState JSON;
backends/default/ops.py: quantize_4bit), not from the C++ code. numpy only.

quantize4(x, quant_type, blocksize=64, double_quant=False) -> dict with
    packed (uint8, (n+1)//2), absmax (float32 stored absmax, or uint8 codes with double quant), quant_map,
    nested_absmax, nested_quant_map, nested_offset (np.float32), absmax_deq (float32 absmax a reader rebuilds)
The single documented exception to bitsandbytes: the double-quant offset. bitsandbytes uses torch's fp32 mean
(implementation-defined reduction order); this reference uses fp32(sequential float64 sum / count), as the tool
does (~1 ulp differences are allowed here; the offset is stored, so dequantization stays exact).
"""
import json

import numpy as np

F = np.float32

NF4_BITS = [0xbf800000, 0xbf3239b1, 0xbf066b30, 0xbeca32a0, 0xbe91a24d, 0xbe3d353f, 0xbdba7871, 0x00000000,
            0x3da2faff, 0x3e24cae3, 0x3e7c04dd, 0x3ead033a, 0x3ee1a4b8, 0x3f1007ab, 0x3f3913b3, 0x3f800000]


def nf4_table():
    return np.array(NF4_BITS, dtype=np.uint32).view(np.float32)


def fp4_table():
    # FP4: 2 exponent + 1 mantissa bits; raw magnitudes in index order, divided by 12 in fp32; bit 3 = sign.
    mags = np.array([0, 0.0625, 8, 12, 4, 6, 2, 3], dtype=np.float32) / np.float32(12)
    return np.concatenate([mags, -mags]).astype(np.float32)


def table(quant_type):
    return nf4_table() if quant_type == "nf4" else fp4_table()


def dynamic_map():
    """create_dynamic_map(signed=True, 7, 8): midpoints of torch's fp32 linspace(0.1, 1, 2^i+1) (torch CPU
    formula: fp32 step, start+step*k in the first half, end-step*(n-1-k) after), times fp32 10^(i-6), both signs,
    plus 0 and 1, sorted."""
    vals = []
    for i in range(7):
        n = 2 ** i + 1
        start, end = F(0.1), F(1.0)
        step = F((end - start) / F(n - 1))
        b = np.empty(n, dtype=np.float32)
        for k in range(n):
            b[k] = F(start + F(step * F(k))) if k < n // 2 else F(end - F(step * F(n - 1 - k)))
        means = ((b[:-1] + b[1:]) / F(2)).astype(np.float32)
        p = (F(10.0 ** (i - 6)) * means).astype(np.float32)
        vals += list(p) + list(-p)
    vals += [F(0), F(1)]
    return np.sort(np.array(vals, dtype=np.float32), kind="stable")


def _bucketize(y, mids):
    """torch.bucketize(right=False): number of boundaries strictly below y."""
    return np.searchsorted(mids, y, side="left")


def _scale(blocks_full, rem_block):
    """quantize_4bit scaling: full blocks by the fp32 reciprocal of the clamped absmax (stored unclamped), the trailing
    partial block by division by its clamped absmax (stored clamped). Returns (y, stored absmax)."""
    ys, am = [], []
    if blocks_full.size:
        a = np.max(np.abs(blocks_full), axis=1).astype(np.float32)
        inv = (F(1) / np.maximum(a, F(1e-38))).astype(np.float32)
        ys.append(np.clip((blocks_full * inv[:, None]).astype(np.float32), F(-1), F(1)).reshape(-1))
        am.append(a)
    if rem_block is not None and rem_block.size:
        a = np.maximum(np.max(np.abs(rem_block)), F(1e-38)).astype(np.float32)
        ys.append(np.clip((rem_block / a).astype(np.float32), F(-1), F(1)))
        am.append(np.array([a], dtype=np.float32))
    y = np.concatenate(ys) if ys else np.zeros(0, np.float32)
    return y.astype(np.float32), (np.concatenate(am) if am else np.zeros(0, np.float32)).astype(np.float32)


def _blockwise(x, bs):
    n = x.size
    full = n // bs
    return x[:full * bs].reshape(full, bs), (x[full * bs:] if n % bs else None)


def quantize4(x, quant_type, blocksize=64, double_quant=False):
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    code = table(quant_type)
    order = np.argsort(code, kind="stable")            # FP4: +0 (index 0) before -0 (index 8), as bnb's argsort
    srt = code[order]
    mids = ((srt[:-1] + srt[1:]) / F(2)).astype(np.float32)
    y, absmax = _scale(*_blockwise(x, blocksize))
    if y.size % 2:
        y = np.concatenate([y, np.zeros(1, np.float32)])   # packing: odd n pads one 0.0 value
    codes = order[_bucketize(y, mids)].astype(np.uint8)
    packed = ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)
    out = {"packed": packed, "quant_map": code, "absmax": absmax, "absmax_deq": absmax}
    if double_quant:
        offset = F(np.add.accumulate(absmax.astype(np.float64))[-1] / absmax.size)
        z = (absmax - offset).astype(np.float32)
        dmap = dynamic_map()
        dm = ((dmap[:-1] + dmap[1:]) / F(2)).astype(np.float32)
        yz, nested = _scale(*_blockwise(z, 256))
        qc = _bucketize(yz, dm).astype(np.uint8)
        deq = (dmap[qc] * np.repeat(nested, 256)[:qc.size]).astype(np.float32)
        deq = (deq + offset).astype(np.float32)
        out.update(absmax=qc, nested_absmax=nested, nested_quant_map=dmap, nested_offset=offset, absmax_deq=deq)
    return out


def dequantize4(packed, absmax_f32, code, n, blocksize):
    """dequantize_4bit in fp32 (before the final dtype rounding)."""
    c = np.empty(packed.size * 2, dtype=np.uint8)
    c[0::2] = packed >> 4
    c[1::2] = packed & 15
    c = c[:n]
    return (code[c] * np.repeat(absmax_f32, blocksize)[:n]).astype(np.float32)


def codes_of(packed, n):
    c = np.empty(packed.size * 2, dtype=np.uint8)
    c[0::2] = packed >> 4
    c[1::2] = packed & 15
    return c[:n]


def quant_state_json(quant_type, blocksize, dtype, shape, offset=None):
    """QuantState JSON: json.dumps of the dict in insertion order; offset is the fp32 value as a Python float."""
    d = {"quant_type": quant_type, "blocksize": blocksize, "dtype": dtype, "shape": list(shape)}
    if offset is not None:
        d.update(nested_blocksize=256, nested_dtype="float32", nested_offset=float(offset))
    return json.dumps(d)
