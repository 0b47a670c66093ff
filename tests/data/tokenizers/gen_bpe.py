#!/usr/bin/python3
# Writes the small byte-level BPE fixtures llama3-bpe/ and qwen2-bpe/ (tokenizer.json + tokenizer_config.json),
# cut-down copies of the structure of meta-llama/Meta-Llama-3-8B (string merges, TemplateProcessing BOS) and
# Qwen/Qwen2.5 (pair-form merges incl. a part with a literal space, ByteLevel post-processor).
# Regenerate: /usr/bin/python3 tests/data/tokenizers/gen_bpe.py
import json
import os

os.chdir(os.path.dirname(os.path.abspath(__file__)))
os.makedirs("llama3-bpe", exist_ok=True)
os.makedirs("qwen2-bpe", exist_ok=True)
G = "\u0120"
vocab = {"!": 0, "a": 1, "b": 2, "c": 3, G: 4, "ab": 5, G + "a": 6, "abc": 7, G + "ab": 8, G + G: 10, "x": 11}
# id 9 intentionally missing
merges_str = ["a b", G + " a", "ab c", G + "a b", G + " " + G]
llama3_re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
qwen2_re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"


def added(id_, content, special, normalized=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": normalized, "special": special}


llama3 = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [added(12, "<|begin_of_text|>", True), added(13, "<|end_of_text|>", True),
                     added(14, "<|reserved_special_token_0|>", False), added(15, "hello\u2581world", False)],
    "normalizer": None,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": llama3_re}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [12], "tokens": ["<|begin_of_text|>"]}}}]},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
              "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
              "vocab": vocab, "merges": merges_str},
}
json.dump(llama3, open("llama3-bpe/tokenizer.json", "w"), ensure_ascii=False, indent=1)
json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "clean_up_tokenization_spaces": True,
           "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
           "chat_template": "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}",
           "added_tokens_decoder": {"12": {"content": "<|begin_of_text|>", "special": True}}},
          open("llama3-bpe/tokenizer_config.json", "w"), ensure_ascii=False, indent=1)

vocab_q = dict(vocab)
vocab_q.pop(G + G)
vocab_q["x y"] = 10
qwen2 = {
    "version": "1.0",
    "truncation": None,
    "padding": None,
    "added_tokens": [added(12, "<|endoftext|>", True), added(13, "<|im_start|>", True), added(14, "<|im_end|>", True),
                     added(15, "<tool_call>", False)],
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": qwen2_re}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
    "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
              "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
              "vocab": vocab_q, "merges": [["a", "b"], [G, "a"], ["ab", "c"], [G + "a", "b"], ["x y", "z"]]},
}
json.dump(qwen2, open("qwen2-bpe/tokenizer.json", "w"), ensure_ascii=False, indent=1)
json.dump({"add_bos_token": False, "add_prefix_space": False, "bos_token": None, "eos_token": "<|im_end|>",
           "pad_token": "<|endoftext|>", "errors": "replace", "model_max_length": 131072,
           "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None,
           "added_tokens_decoder": {"12": {"content": "<|endoftext|>", "special": True}}},
          open("qwen2-bpe/tokenizer_config.json", "w"), ensure_ascii=False, indent=1)
