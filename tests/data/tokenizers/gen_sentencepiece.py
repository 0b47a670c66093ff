#!/usr/bin/python3
# Writes tiny.model: a hand-encoded SentencePiece ModelProto (protobuf wire format, written here byte by byte,
# independently of shardforge's reader) used by tests/unit/model/tokenizer_sentencepiece_test.cpp.
# Regenerate: /usr/bin/python3 tests/data/tokenizers/gen_sentencepiece.py
import os
import struct


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_len(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_varint(num, v):
    return varint(num << 3 | 0) + varint(v)


def field_f32(num, f):
    return varint(num << 3 | 5) + struct.pack("<f", f)


# (piece, score, type); type None = field absent (proto default NORMAL)
PIECES = [
    ("<unk>", 0.0, 2),
    ("<s>", 0.0, 3),
    ("</s>", 0.0, 3),
    ("<0x0A>", 0.0, 6),
    ("\u2581the", -1.5, None),
    ("\u2581a", -2.25, 1),
    ("<start_of_turn>", 0.0, 1),  # a special token the SentencePiece model types NORMAL (as Gemma 3's does)
    ("<mask>", 0.0, 4),
    ("<unused0>", 0.0, 5),
    ("\u00e9t\u00e9", -7.0, None),
]

model = bytearray()
for piece, score, typ in PIECES:
    p = field_len(1, piece.encode("utf-8")) + field_f32(2, score)
    if typ is not None:
        p += field_varint(3, typ)
    model += field_len(1, p)
# trainer_spec: model_type BPE (2), vocab_size 10 (field 4), byte_fallback (35) true
trainer = field_varint(3, 2) + field_varint(4, len(PIECES)) + field_varint(35, 1)
model += field_len(2, trainer)
# normalizer_spec: name "identity" (1), add_dummy_prefix (3) false, remove_extra_whitespaces (4) false
normalizer = field_len(1, b"identity") + field_varint(3, 0) + field_varint(4, 0)
model += field_len(3, normalizer)

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "tiny.model"), "wb") as f:
    f.write(bytes(model))
print(len(model), "bytes")
