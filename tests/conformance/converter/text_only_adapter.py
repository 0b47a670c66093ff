"""text_only_adapter.py ADAPTER_DIR OUT_DIR: the PEFT adapter without its vision-tower and projector factors (a text-only
fine-tune of a vision-language model): adapter_model.safetensors keeps the tensors whose names contain neither
"vision_tower" nor "multi_modal_projector", and
adapter_config.json's target_modules becomes a regex over the language model's modules (PEFT: full match)."""
import json
import os
import struct
import sys

src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
with open(os.path.join(src, "adapter_model.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
meta = header.pop("__metadata__", None)
kept = {k: v for k, v in header.items() if "vision_tower" not in k and "multi_modal_projector" not in k}
assert kept and len(kept) < len(header), "expected both language-model and vision-tower factors"
out_header, chunks, off = {}, [], 0
for k in sorted(kept, key=lambda k: kept[k]["data_offsets"][0]):
    v = dict(kept[k])
    b, e = v["data_offsets"]
    chunks.append(data[b:e])
    v["data_offsets"] = [off, off + (e - b)]
    off += e - b
    out_header[k] = v
if meta is not None:
    out_header["__metadata__"] = meta
h = json.dumps(out_header, separators=(",", ":")).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(dst, "adapter_model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
with open(os.path.join(src, "adapter_config.json")) as f:
    cfg = json.load(f)
cfg["target_modules"] = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
with open(os.path.join(dst, "adapter_config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
print(f"text-only adapter: {len(kept)} of {len(header)} tensors")
