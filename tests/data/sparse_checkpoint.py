"""Header-only (sparse) safetensors checkpoints: real configs and tensor names/shapes, all-zero data.

Shared by the scale generators (gen_qwen35moe.py, gen_deepseek2.py): a family's generator lists its tensors as
(name, dtype, shape) and its config.json; this module shards them like the Hub release, writes each safetensors
header and sizes the data region with truncate, so hundreds of GB cost no disk space and read as zeros (like
tests/data/gen_big_model.py), then writes model.safetensors.index.json, config.json and the tokenizer files.
"""
import argparse
import json
import os
import shutil
import struct

DTYPE_BYTES = {"F8_E4M3": 1, "U8": 1, "BF16": 2, "F16": 2, "F32": 4}


def nbytes(dtype, shape):
    n = DTYPE_BYTES[dtype]
    for d in shape:
        n *= d
    return n


def shard_by_size(tensors, shard_size):
    """save_pretrained's sharding: tensors in order, a new shard when the next one would pass the limit (a tensor
    larger than the limit gets a shard of its own)."""
    shards, cur, size = [], [], 0
    for t in tensors:
        if cur and size + nbytes(t[1], t[2]) > shard_size:
            shards.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += nbytes(t[1], t[2])
    shards.append(cur)
    return shards


def shard_by_count(tensors, n_shards):
    """N shards of about equal bytes, tensors in order: a tensor goes to the shard its first byte falls in."""
    total = sum(nbytes(d, s) for _, d, s in tensors)
    shards, start = [[] for _ in range(n_shards)], 0
    for t in tensors:
        shards[start * n_shards // total].append(t)
        start += nbytes(t[1], t[2])
    if any(not g for g in shards):
        raise SystemExit(f"{n_shards} shards: some would be empty")
    return shards


def write_shard(path, group):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape in group:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.truncate(8 + len(blob) + offset)


def write_checkpoint(out, tensors, config, tokenizer_from, shards,
                     shard_name="model-{k:05d}-of-{n:05d}.safetensors"):
    """Writes the checkpoint; `shards` is the list of tensor groups (shard_by_size / shard_by_count), `shard_name` a
    format with k (1-based) and n. Returns (total tensor bytes, tensor count)."""
    os.makedirs(out, exist_ok=True)
    weight_map = {}
    for k, group in enumerate(shards):
        name = shard_name.format(k=k + 1, n=len(shards))
        write_shard(os.path.join(out, name), group)
        weight_map.update({n: name for n, _, _ in group})
    total = sum(nbytes(d, s) for _, d, s in tensors)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for n in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
        src = os.path.join(tokenizer_from, n)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(out, n))
    return total, len(tensors)


def sized_main(layers, experts, build):
    """The command line of the generators sharded like save_pretrained (5 GB files): OUT --tokenizer-from DEMO_BASE
    [--layers N] [--experts E] [--shard-size BYTES], the model's own counts by default. build(layers, experts) ->
    (tensors, config). Writes the checkpoint and prints its total tensor bytes and tensor count."""
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--tokenizer-from", required=True)
    ap.add_argument("--layers", type=int, default=layers)
    ap.add_argument("--experts", type=int, default=experts)
    ap.add_argument("--shard-size", type=int, default=5 * 10**9)  # save_pretrained's default max_shard_size
    a = ap.parse_args()
    ts, cfg = build(a.layers, a.experts)
    total, count = write_checkpoint(a.out, ts, cfg, a.tokenizer_from, shard_by_size(ts, a.shard_size))
    print(total, count)
