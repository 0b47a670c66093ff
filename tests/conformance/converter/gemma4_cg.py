#!/usr/bin/python3
"""gemma4_cg.py MERGED OUT: the Gemma4ForCausalLM checkpoint MERGED (one safetensors file) rewritten in the layout
of a text-only fine-tune of Gemma4ForConditionalGeneration, as transformers saves it: the text model under
model.language_model.*, a vision and an audio tower beside it (model.vision_tower.*, model.embed_vision.*,
model.audio_tower.*, model.embed_audio.*; one small tensor each, never part of the text GGUF), config.json with
text_config / vision_config / audio_config (transformers' Gemma4Config), the tokenizer files copied. numpy only."""
import json
import os
import shutil
import struct
import sys

import numpy as np


def read_st(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def write_st(path, tensors):
    header, off, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    merged, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    src = read_st(os.path.join(merged, "model.safetensors"))
    ts = {("model.language_model." + k[len("model."):] if k.startswith("model.") else k): v for k, v in src.items()}
    rng = np.random.default_rng(0)
    for name, shape in (("model.vision_tower.encoder.layers.0.self_attn.q_proj.linear.weight", [16, 16]),
                        ("model.embed_vision.embedding_projection.weight", [256, 16]),
                        ("model.audio_tower.layers.0.self_attn.per_dim_scale", [16]),
                        ("model.embed_audio.embedding_projection.weight", [256, 16])):
        ts[name] = ("F32", shape, rng.standard_normal(shape).astype("<f4").tobytes())
    write_st(os.path.join(out, "model.safetensors"), ts)
    with open(os.path.join(merged, "config.json")) as f:
        text = json.load(f)
    arch = text.pop("architectures")
    assert arch == ["Gemma4ForCausalLM"], arch
    cfg = {"architectures": ["Gemma4ForConditionalGeneration"], "audio_config": {"model_type": "gemma4_audio",
           "hidden_size": 16, "num_hidden_layers": 1}, "boi_token_id": 255999, "dtype": text.get("dtype", "float32"),
           "model_type": "gemma4", "text_config": text, "tie_word_embeddings": True,
           "transformers_version": text.get("transformers_version"),
           "vision_config": {"model_type": "gemma4_vision", "hidden_size": 16, "num_hidden_layers": 1}}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for fn in os.listdir(merged):
        if fn != "model.safetensors" and fn != "config.json" and not fn.endswith(".gguf"):
            shutil.copy(os.path.join(merged, fn), os.path.join(out, fn))


if __name__ == "__main__":
    main()
