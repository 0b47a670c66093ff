#!/usr/bin/python3
"""Independent byte-level BPE tokenizer for a Hugging Face tokenizer.json (the oracle for llama.cpp's tokenizer).

    /usr/bin/python3 tests/reference/bpe_tokenize.py TOKENIZER_JSON [--special] [--no-bos] TEXT...
    /usr/bin/python3 tests/reference/bpe_tokenize.py TOKENIZER_JSON --file texts.json   (a JSON list of strings)

Prints one JSON object per line: {"text": ..., "ids": [...], "tokens": [...]}.

Pipeline (tokenizers' BPE model with a Sequence[Split(regex), ByteLevel(use_regex=false)] pre-tokenizer):
  1. with --special, added tokens marked special are cut out first (leftmost, longest match) and map to their ids
     (llama.cpp's parse_special / node-llama-cpp's tokenize(text, true)); without it they are plain text;
  2. each remaining piece is split with the pre-tokenizer regex, emulated by hand because Python's `re` lacks
     \\p{L} / \\p{N}: Llama 3's
        (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|
        \\s*[\\r\\n]+|\\s+(?!\\S)|\\s+
     Qwen2's (the same with \\p{N} single digits) and GPT-2's ByteLevel(use_regex=true) pattern;
  3. each pre-token's UTF-8 bytes are mapped through GPT-2's bytes_to_unicode;
  4. with model.ignore_merges and the whole pre-token in the vocab, it is one token; otherwise the lowest-rank
     adjacent pair is merged until no pair has a rank;
  5. the post-processor's leading special token (TemplateProcessing "single") is prepended unless --no-bos.
"""
import argparse
import json
import sys
import unicodedata

LLAMA3_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_RE = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")

# Unicode White_Space (what \s means for Oniguruma and llama.cpp's unicode tables).
_WS = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def is_l(c):
    return unicodedata.category(c).startswith("L")


def is_n(c):
    return unicodedata.category(c).startswith("N")


def is_s(c):
    return c in _WS


def is_nl(c):
    return c in "\r\n"


def is_other(c):  # [^\s\p{L}\p{N}]
    return not is_s(c) and not is_l(c) and not is_n(c)


def _contraction(s, i):
    if s[i] != "'" or i + 1 >= len(s):
        return 0
    a = s[i + 1].lower()
    b = s[i + 2].lower() if i + 2 < len(s) else ""
    if a in "stmd":
        return 2
    if a + b in ("re", "ve", "ll"):
        return 3
    return 0


def _whitespace(s, i):
    """\\s*[\\r\\n]+ | \\s+(?!\\S) | \\s+ at s[i] (s[i] is whitespace)."""
    n, k = len(s), i
    while k < n and is_s(s[k]):
        k += 1
    for p in range(k, i, -1):  # \s*[\r\n]+: the run up to and including its last newline
        if is_nl(s[p - 1]):
            return p - i
    if k == n or k - 1 == i:
        return k - i
    return k - 1 - i  # \s+(?!\S): leave one space for the next word


def split_llama3(s, max_digits):
    out, i, n = [], 0, len(s)
    while i < n:
        ln = _contraction(s, i)
        if not ln:
            k = i
            if not is_nl(s[k]) and not is_l(s[k]) and not is_n(s[k]) and k + 1 < n and is_l(s[k + 1]):
                k += 1
            if is_l(s[k]):
                while k < n and is_l(s[k]):
                    k += 1
                ln = k - i
        if not ln and is_n(s[i]):
            k = i
            while k < n and is_n(s[k]) and (max_digits is None or k - i < max_digits):
                k += 1
            ln = k - i
        if not ln:
            k = i + 1 if (s[i] == " " and i + 1 < n and is_other(s[i + 1])) else i
            if is_other(s[k]):
                while k < n and is_other(s[k]):
                    k += 1
                while k < n and is_nl(s[k]):
                    k += 1
                ln = k - i
        if not ln and is_s(s[i]):
            ln = _whitespace(s, i)
        if not ln:
            ln = 1
        out.append(s[i:i + ln])
        i += ln
    return out


def split_gpt2(s):
    """'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+ (case-sensitive)."""
    out, i, n = [], 0, len(s)
    while i < n:
        ln = 0
        if s[i] == "'" and i + 1 < n:
            if s[i + 1] in "stmd":
                ln = 2
            elif s[i + 1:i + 3] in ("re", "ve", "ll"):
                ln = 3
        for cls in (is_l, is_n, is_other):
            if ln:
                break
            k = i + 1 if (s[i] == " " and i + 1 < n and cls(s[i + 1])) else i
            if cls(s[k]):
                while k < n and cls(s[k]):
                    k += 1
                ln = k - i
        if not ln and is_s(s[i]):
            n_ws = i
            while n_ws < n and is_s(s[n_ws]):
                n_ws += 1
            ln = n_ws - i if (n_ws == n or n_ws - 1 == i) else n_ws - 1 - i
        if not ln:
            ln = 1
        out.append(s[i:i + ln])
        i += ln
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class Tokenizer:
    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            tj = json.load(f)
        m = tj["model"]
        if m.get("type") != "BPE":
            raise SystemExit(f"{path}: model type {m.get('type')} is not BPE")
        self.vocab = m["vocab"]
        self.ignore_merges = bool(m.get("ignore_merges", False))
        self.ranks = {}
        for r, mg in enumerate(m["merges"]):
            a, b = (mg.split(" ", 1) if isinstance(mg, str) else mg)
            self.ranks.setdefault((a, b), r)
        self.added = {a["content"]: a["id"] for a in tj.get("added_tokens", [])}
        self.special = {a["content"]: a["id"] for a in tj.get("added_tokens", []) if a.get("special")}
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.id_to_token.update({i: t for t, i in self.added.items()})
        self.b2u = bytes_to_unicode()
        self.splitter = self._pick_splitter(tj.get("pre_tokenizer"), path)
        self.bos = None
        pp = tj.get("post_processor") or {}
        procs = pp.get("processors", [pp]) if pp.get("type") == "Sequence" else [pp]
        for p in procs:
            if p.get("type") == "TemplateProcessing" and p["single"] and "SpecialToken" in p["single"][0]:
                name = p["single"][0]["SpecialToken"]["id"]
                self.bos = p["special_tokens"][name]["ids"][0]

    @staticmethod
    def _pick_splitter(pre, path):
        if pre is None:
            raise SystemExit(f"{path}: no pre_tokenizer")
        items = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        split = [p for p in items if p["type"] == "Split"]
        bl = [p for p in items if p["type"] == "ByteLevel"]
        if split:
            rx = split[0]["pattern"].get("Regex")
            if rx == LLAMA3_RE:
                return lambda s: split_llama3(s, 3)
            if rx == QWEN2_RE:
                return lambda s: split_llama3(s, 1)
            raise SystemExit(f"{path}: unsupported Split regex {rx!r}")
        if bl and bl[0].get("use_regex", True):
            return split_gpt2
        raise SystemExit(f"{path}: unsupported pre_tokenizer {pre['type']}")

    def _bpe(self, word):
        if self.ignore_merges and word in self.vocab:
            return [word]
        syms = list(word)
        while len(syms) > 1:
            best, at = None, -1
            for k in range(len(syms) - 1):
                r = self.ranks.get((syms[k], syms[k + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, k
            if best is None:
                break
            syms[at:at + 2] = [syms[at] + syms[at + 1]]
        return syms

    def _segments(self, text, special):
        """Yields (is_special_id, piece): leftmost-longest match of special added tokens."""
        if not special or not self.special:
            yield False, text
            return
        i, start = 0, 0
        names = sorted(self.special, key=len, reverse=True)
        while i < len(text):
            hit = next((t for t in names if text.startswith(t, i)), None)
            if hit:
                if start < i:
                    yield False, text[start:i]
                yield True, hit
                i += len(hit)
                start = i
            else:
                i += 1
        if start < len(text):
            yield False, text[start:]

    def encode(self, text, special=False, add_bos=True):
        ids = [self.bos] if (add_bos and self.bos is not None) else []
        for is_special, piece in self._segments(text, special):
            if is_special:
                ids.append(self.special[piece])
                continue
            for pre in self.splitter(piece):
                word = "".join(self.b2u[b] for b in pre.encode("utf-8"))
                for tok in self._bpe(word):
                    if tok not in self.vocab:
                        raise SystemExit(f"token {tok!r} not in vocab (broken merges?)")
                    ids.append(self.vocab[tok])
        return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("tokenizer_json")
    ap.add_argument("texts", nargs="*")
    ap.add_argument("--file", help="JSON list of strings")
    ap.add_argument("--special", action="store_true", help="match special added tokens in the text")
    ap.add_argument("--no-bos", action="store_true")
    a = ap.parse_intermixed_args()
    tok = Tokenizer(a.tokenizer_json)
    texts = list(a.texts)
    if a.file:
        with open(a.file, encoding="utf-8") as f:
            texts += json.load(f)
    for t in texts:
        ids = tok.encode(t, special=a.special, add_bos=not a.no_bos)
        sys.stdout.write(json.dumps({"text": t, "ids": ids, "tokens": [tok.id_to_token[i] for i in ids]},
                                    ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
