#!/usr/bin/python3
"""to_vl.py SRC DST [--drop-mtp]: rewrites a Qwen3_5ForCausalLM checkpoint (one model.safetensors) as the text part of a
Qwen3_5ForConditionalGeneration one, the layout of the Hub's Qwen/Qwen3.5-* repos (transformers'
modeling_qwen3_5.py): decoder tensors under model.language_model.*, lm_head.weight and mtp.* where they were, a
small vision tower under model.visual.*, and config.json with the text hparams nested in text_config next to a
vision_config. Tokenizer files are copied. json + numpy only; the safetensors layout is written by hand.
--drop-mtp leaves out the mtp.* tensors but keeps mtp_num_hidden_layers, as transformers' save_pretrained does (its
model has no MTP modules).
"""
import json
import os
import shutil
import struct
import sys

import numpy as np


def read_st(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[b:e])
    return out


def write_st(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        dt, shape, raw = tensors[name]
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    src, dst = sys.argv[1], sys.argv[2]
    drop_mtp = "--drop-mtp" in sys.argv[3:]
    os.makedirs(dst, exist_ok=True)
    t = read_st(os.path.join(src, "model.safetensors"))
    out = {}
    for name, v in t.items():
        if drop_mtp and name.startswith("mtp."):
            continue
        out[("model.language_model." + name[len("model."):]) if name.startswith("model.") else name] = v
    dt = t["model.embed_tokens.weight"][0]
    rng = np.random.default_rng(1)
    for name, shape in [("model.visual.patch_embed.proj.weight", [16, 3, 2, 4, 4]),
                        ("model.visual.blocks.0.attn.qkv.weight", [48, 16]),
                        ("model.visual.merger.linear_fc2.weight", [32, 64])]:
        arr = rng.standard_normal(shape).astype(np.float32)
        raw = arr.tobytes() if dt == "F32" else (arr.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        out[name] = ("F32" if dt == "F32" else "BF16", shape, raw)
    write_st(os.path.join(dst, "model.safetensors"), out)
    with open(os.path.join(src, "config.json")) as f:
        text = json.load(f)
    text.pop("architectures", None)
    cfg = {"architectures": ["Qwen3_5ForConditionalGeneration"], "image_token_id": 7, "model_type": "qwen3_5",
           "text_config": text, "tie_word_embeddings": text.get("tie_word_embeddings", False),
           "transformers_version": text.get("transformers_version"), "video_token_id": 8,
           "vision_config": {"depth": 1, "hidden_size": 16, "model_type": "qwen3_5", "out_hidden_size": 32},
           "vision_end_token_id": 6, "vision_start_token_id": 5}
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in os.listdir(src):
        if name.startswith(("tokenizer", "special_tokens", "generation_config", "chat_template")):
            shutil.copy(os.path.join(src, name), os.path.join(dst, name))


if __name__ == "__main__":
    main()
