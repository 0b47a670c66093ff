#!/usr/bin/env python3
# Independent numpy float32 reference for Llama-3 rope_freqs (llama.cpp's convert_hf_to_gguf.py; llama.cpp
# conversion/llama.py generate_extra_tensors). Every step is a float32 operation; Python-number operands are rounded to
# float32 first, as torch does for a float32 tensor and a Python scalar; scalar / tensor is reciprocal(tensor) * scalar
# (torch's __rtruediv__).
# usage: rope_freqs.py BASE DIM FACTOR LOW_FREQ_FACTOR HIGH_FREQ_FACTOR OLD_CONTEXT_LEN
# prints the float32 bit patterns (8 hex digits) of the dim/2 factors, space separated.
import math
import sys

import numpy as np


def main() -> None:
    base, dim, factor, low, high, old = (float(a) for a in sys.argv[1:7])
    dim_i = int(dim)
    f32 = np.float32
    out = []
    for k in range(0, dim_i, 2):
        exponent = f32(k) / f32(dim_i)
        freq = f32(1.0) / np.power(f32(base), exponent, dtype=np.float32)
        wavelen = (f32(1.0) / freq) * f32(2 * math.pi)
        if wavelen < f32(old / high):
            v = f32(1.0)
        elif wavelen > f32(old / low):
            v = f32(factor)
        else:
            smooth = ((f32(1.0) / wavelen) * f32(old) - f32(low)) / f32(high - low)
            v = f32(1.0) / ((f32(1.0) - smooth) / f32(factor) + smooth)
        out.append(f32(v))
    print(" ".join("%08x" % int(np.array(v, dtype=np.float32).view(np.uint32)) for v in out))


if __name__ == "__main__":
    main()
