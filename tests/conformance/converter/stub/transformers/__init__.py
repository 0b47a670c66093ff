"""A small stand-in for the parts of Hugging Face `transformers` that llama.cpp's convert_hf_to_gguf.py touches
for shardforge's demo checkpoints (tests/conformance/converter/README.md). Debian's python3 has no transformers.

AutoConfig.from_pretrained(DIR).to_dict(): config.json as written (no class defaults are added; the converter
  falls back to reading config.json itself when AutoConfig fails, which gives the same dict).
AutoTokenizer.from_pretrained(DIR): the tokenizer.json of DIR as a byte-level BPE tokenizer, written from the
  tokenizers library's documented behaviour (no shardforge code): added tokens split out first, the pre_tokenizer's
  Split regex (\\p{..} classes expanded from unicodedata, since Python's `re` has none), ByteLevel byte->unicode
  mapping, BPE merges by rank (ignore_merges: a pre-token that is itself in the vocabulary is one token), the
  TemplateProcessing post-processor for add_special_tokens=True, and decode through the ByteLevel decoder.
  Python's \s is str.isspace() (it also matches U+001C..U+001F, which Oniguruma's \s does not); stub/check_bpe.py
  checks the whole pipeline against llama.cpp's HF-generated tokenizer test vectors. Anything else in a
  tokenizer.json (normalizers, other pre-tokenizers or models) raises NotImplementedError: no silent guess.
  A SentencePiece-style BPE (model.byte_fallback true, Gemma 4) is loaded for its vocabulary only (vocab_size,
  get_vocab, get_added_vocab, all_special_tokens/_ids: what gguf-py's LlamaHfVocab reads); encoding it raises
  NotImplementedError. all_special_tokens are transformers' SPECIAL_TOKENS_ATTRIBUTES (bos, eos, unk, sep, pad, cls,
  mask, additional_special_tokens) from tokenizer_config.json, then special_tokens_map.json.

The one documented deviation: get_vocab_base_pre() recognises a pre-tokenizer by the sha256 of the token ids of
a fixed text (chktxt) under the published tokenizer. A demo vocabulary of a few hundred tokens has no published
fingerprint, so when SF_STUB_FINGERPRINT_VOCAB names a vocabulary GGUF (llama.cpp's models/ggml-vocab-*.gguf,
tokens and merges of a published tokenizer), encode() of exactly that text tokenizes it with the demo's
pre-tokenizer and post-processor but with that vocabulary and its merges. The converter then names the
pre-tokenizer only if the demo's pre-tokenizer behaves like the published one on chktxt.
"""
from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from pathlib import Path

__version__ = "0.0-shardforge-stub"

CHKTXT = '\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL'


class _Config:
    def __init__(self, d):
        self._d = d
        for k, v in d.items():
            setattr(self, k, v)

    def to_dict(self):
        return dict(self._d)


class AutoConfig:
    @staticmethod
    def from_pretrained(path, **_kw):
        with open(Path(path) / "config.json", encoding="utf-8") as f:
            return _Config(json.load(f))


# --- Unicode property classes for Python's re -------------------------------------------------------------------
_CLASS_CACHE: dict[str, str] = {}


def _ranges(pred) -> str:
    """The code points satisfying pred as the inside of a [...] class."""
    out = []
    start = None
    for cp in range(sys.maxunicode + 2):
        ok = cp <= sys.maxunicode and pred(chr(cp))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            a, b = start, cp - 1
            out.append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
            start = None
    return "".join(out)


def _prop(name: str) -> str:
    if name not in _CLASS_CACHE:
        cats = {"L": ("L",), "N": ("N",), "M": ("M",), "Lu": ("Lu",), "Ll": ("Ll",), "Lt": ("Lt",), "Lm": ("Lm",),
                "Lo": ("Lo",), "P": ("P",), "S": ("S",)}[name]
        _CLASS_CACHE[name] = _ranges(lambda c: unicodedata.category(c).startswith(cats))
    return _CLASS_CACHE[name]


def _translate_regex(pat: str) -> str:
    """tokenizers (Oniguruma) regex -> Python re: \\p{X} expanded inside and outside character classes."""
    out = []
    i = 0
    in_class = False
    while i < len(pat):
        c = pat[i]
        if c == "\\" and i + 1 < len(pat):
            if pat[i + 1] in "pP" and i + 2 < len(pat) and pat[i + 2] == "{":
                j = pat.index("}", i)
                name = pat[i + 3:j]
                if pat[i + 1] == "P":
                    raise NotImplementedError(f"stub: \\P{{{name}}}")
                body = _prop(name)
                out.append(body if in_class else f"[{body}]")
                i = j + 1
                continue
            out.append(pat[i:i + 2])
            i += 2
            continue
        if c == "[" and not in_class:
            in_class = True
        elif c == "]" and in_class:
            in_class = False
        out.append(c)
        i += 1
    return "".join(out)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable code point table (tokenizers' ByteLevel)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_B2U = _bytes_to_unicode()
_U2B = {u: b for b, u in _B2U.items()}


class AddedToken:
    def __init__(self, d):
        self.content = d["content"]
        self.special = d.get("special", False)
        self.normalized = d.get("normalized", True)
        self.lstrip = d.get("lstrip", False)
        self.rstrip = d.get("rstrip", False)
        self.single_word = d.get("single_word", False)

    def __str__(self):
        return self.content


class _BPE:
    def __init__(self, vocab: dict[str, int], merges: list, ignore_merges: bool):
        self.vocab = vocab
        self.ranks = {}
        for r, m in enumerate(merges):
            pair = tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m)
            self.ranks.setdefault(pair, r)
        self.ignore_merges = ignore_merges
        self.cache: dict[str, list[int]] = {}

    def word(self, w: str) -> list[int]:
        if w in self.cache:
            return self.cache[w]
        if self.ignore_merges and w in self.vocab:
            ids = [self.vocab[w]]
        else:
            syms = list(w)
            while len(syms) > 1:
                best = None
                for k in range(len(syms) - 1):
                    r = self.ranks.get((syms[k], syms[k + 1]))
                    if r is not None and (best is None or r < best[0]):
                        best = (r, k)
                if best is None:
                    break
                k = best[1]
                syms = syms[:k] + [syms[k] + syms[k + 1]] + syms[k + 2:]
            ids = [self.vocab[s] for s in syms]  # byte symbols are always in a byte-level vocabulary
        self.cache[w] = ids
        return ids


def _load_vocab_gguf(path):
    """tokens and merges of a llama.cpp vocabulary GGUF (GGUF v3: header, then key/value pairs; only the two
    string arrays are kept)."""
    import struct
    with open(path, "rb") as f:
        b = f.read()
    if b[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    p = 8
    n_kv = struct.unpack_from("<Q", b, p + 8)[0]
    p += 16
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def string(p):
        n = struct.unpack_from("<Q", b, p)[0]
        return b[p + 8:p + 8 + n].decode("utf-8"), p + 8 + n

    def skip(t, p):
        if t == 8:
            return string(p)[1]
        if t == 9:
            et, n = struct.unpack_from("<IQ", b, p)
            p += 12
            if et in sizes:
                return p + n * sizes[et]
            for _ in range(n):
                p = skip(et, p)
            return p
        return p + sizes[t]
    found = {}
    for _ in range(n_kv):
        key, p = string(p)
        t = struct.unpack_from("<I", b, p)[0]
        p += 4
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"):
            n = struct.unpack_from("<Q", b, p + 4)[0]
            p += 12
            out = []
            for _ in range(n):
                s, p = string(p)
                out.append(s)
            found[key] = out
        else:
            p = skip(t, p)
    tokens = found["tokenizer.ggml.tokens"]
    return {t: i for i, t in enumerate(tokens)}, found["tokenizer.ggml.merges"]


class _Tokenizer:
    is_fast = True

    def __init__(self, path: Path):
        with open(path / "tokenizer.json", encoding="utf-8") as f:
            tj = json.load(f)
        model = tj["model"]
        if model.get("type") != "BPE":
            raise NotImplementedError(f"stub: tokenizer model {model.get('type')}")
        self._tj = tj
        self._added = [AddedToken(a) for a in tj.get("added_tokens", [])]
        self._added_ids = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
        self._model_vocab = dict(model["vocab"])
        self.vocab = dict(self._model_vocab)
        self.vocab.update(self._added_ids)
        self.vocab_size = len(self._model_vocab)
        self.added_tokens_decoder = {a["id"]: AddedToken(a) for a in tj.get("added_tokens", [])}
        self._bpe = _BPE(self._model_vocab, model.get("merges", []), model.get("ignore_merges", False))
        self._fp = None
        self._special = self._special_tokens(path)
        self._vocab_only = bool(model.get("byte_fallback", False))
        if self._vocab_only:
            return
        self._splits, self._byte_level = self._pre_steps(tj.get("pre_tokenizer"))
        if tj.get("normalizer") is not None:
            raise NotImplementedError("stub: normalizer")

    @staticmethod
    def _special_tokens(path: Path):
        out = []
        for name in ("tokenizer_config.json", "special_tokens_map.json"):
            f = path / name
            if not f.is_file():
                continue
            with open(f, encoding="utf-8") as fh:
                d = json.load(fh)
            for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                      "additional_special_tokens"):
                for v in (d.get(k) if isinstance(d.get(k), list) else [d.get(k)]):
                    c = v.get("content") if isinstance(v, dict) else v
                    if isinstance(c, str) and c not in out:
                        out.append(c)
        return out

    @property
    def all_special_tokens(self):
        return list(self._special)

    @property
    def all_special_ids(self):
        return [self.vocab[t] for t in self._special if t in self.vocab]

    @staticmethod
    def _pre_steps(pre):
        steps = pre.get("pretokenizers", []) if pre and pre.get("type") == "Sequence" else ([pre] if pre else [])
        splits = []
        byte_level = False
        for s in steps:
            if s["type"] == "Split":
                if s.get("behavior") != "Isolated" or s.get("invert"):
                    raise NotImplementedError("stub: Split behaviour")
                splits.append(re.compile(_translate_regex(s["pattern"]["Regex"])))
            elif s["type"] == "ByteLevel":
                if s.get("use_regex", True) or s.get("add_prefix_space", False):
                    raise NotImplementedError("stub: ByteLevel with its own regex or prefix space")
                byte_level = True
            else:
                raise NotImplementedError(f"stub: pre-tokenizer {s['type']}")
        if not byte_level:
            raise NotImplementedError("stub: no ByteLevel pre-tokenizer")
        return splits, byte_level

    def get_vocab(self):
        return dict(self.vocab)

    def get_added_vocab(self):
        return dict(self._added_ids)

    def __len__(self):
        return len(self.vocab)

    def _pretokenize(self, text):
        pieces = [text]
        for rx in self._splits:
            nxt = []
            for p in pieces:
                pos = 0
                for m in rx.finditer(p):
                    if m.start() > pos:
                        nxt.append(p[pos:m.start()])
                    if m.end() > m.start():
                        nxt.append(m.group(0))
                    pos = m.end()
                if pos < len(p):
                    nxt.append(p[pos:])
            pieces = nxt
        return ["".join(_B2U[b] for b in p.encode("utf-8")) for p in pieces]

    def _encode_plain(self, text, bpe, vocab_of_added):
        ids = []
        # added tokens are split out first (longest first at a position: tokenizers' AddedVocabulary)
        added = sorted(vocab_of_added, key=len, reverse=True)
        i = 0
        start = 0
        while i <= len(text):
            hit = next((a for a in added if text.startswith(a, i)), None) if i < len(text) else None
            if hit is not None or i == len(text):
                seg = text[start:i]
                for w in self._pretokenize(seg) if seg else []:
                    ids += bpe.word(w)
                if hit is None:
                    break
                ids.append(vocab_of_added[hit])
                i += len(hit)
                start = i
            else:
                i += 1
        return ids

    def _post(self, ids, vocab_of_added):
        pp = self._tj.get("post_processor")
        procs = pp.get("processors", []) if pp and pp.get("type") == "Sequence" else ([pp] if pp else [])
        for p in procs:
            if p["type"] == "TemplateProcessing":
                out = []
                for item in p["single"]:
                    if "SpecialToken" in item:
                        out.append(vocab_of_added[item["SpecialToken"]["id"]])
                    else:
                        out += ids
                ids = out
            elif p["type"] != "ByteLevel":  # ByteLevel post-processing only trims offsets
                raise NotImplementedError(f"stub: post-processor {p['type']}")
        return ids

    def encode(self, text, add_special_tokens=True):
        if self._vocab_only:
            raise NotImplementedError("stub: encoding with a SentencePiece-style (byte_fallback) BPE")
        if text == CHKTXT and os.environ.get("SF_STUB_FINGERPRINT_VOCAB"):
            if self._fp is None:
                vocab, merges = _load_vocab_gguf(os.environ["SF_STUB_FINGERPRINT_VOCAB"])
                self._fp = (_BPE(vocab, merges, self._tj["model"].get("ignore_merges", False)), vocab)
            bpe, vocab = self._fp
            added = {a.content: vocab[a.content] for a in self._added if a.content in vocab}
            ids = self._encode_plain(text, bpe, added)
            return self._post(ids, added) if add_special_tokens else ids
        ids = self._encode_plain(text, self._bpe, self._added_ids)
        return self._post(ids, self._added_ids) if add_special_tokens else ids

    def decode(self, ids, skip_special_tokens=False):
        inv = {i: t for t, i in self.vocab.items()}
        out = bytearray()
        for i in ids:
            t = inv[i]
            if i in self.added_tokens_decoder:
                if skip_special_tokens and self.added_tokens_decoder[i].special:
                    continue
                out += t.encode("utf-8")
            else:
                out += bytes(_U2B[c] for c in t)
        return out.decode("utf-8", errors="replace")


class AutoTokenizer:
    @staticmethod
    def from_pretrained(path, **_kw):
        return _Tokenizer(Path(path))
