// Private pieces of the demo model shared by demo.cpp and demo_tokenizer.cpp.
#pragma once
#include <shardforge/model.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace shardforge::model {
// The English text the demo tokenizer's merges are learned from (ASCII).
[[nodiscard]] std::string_view demo_corpus() noexcept;
}  // namespace shardforge::model

namespace shardforge::model::detail {

// The special tokens of the demo tokenizer, in id order right after the learned BPE tokens
// (Llama 3's names; the instruct template uses the header and eot tokens).
inline constexpr const char* demo_specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                                "<|end_header_id|>", "<|eot_id|>"};
inline constexpr int demo_n_specials = 5;
// GLM-4.5's first added tokens, in its id order (glm4moe demo); no BOS is added by the tokenizer, the chat template
// starts with [gMASK]<sop>.
inline constexpr const char* demo_glm_specials[] = {"<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
                                                    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"};
inline constexpr int demo_glm_n_specials = 10;

struct DemoTokenizer {
    std::vector<std::string> tokens;  // id -> token string (byte-level alphabet, UTF-8), specials included
    std::vector<std::string> merges;  // "left right", by rank
    int n_bpe = 0;                    // ids [0, n_bpe) are BPE tokens (256 bytes first), the rest added tokens
    int bos_id = 0, eos_id = 0, eot_id = 0;
    bool glm = false;  // GLM's specials, template and tokenizer_config (no TemplateProcessing BOS)
};

// Learns min(vocab - 5 - 256, available) merges from demo_corpus(); when the corpus runs out of pairs the
// remaining ids become <|reserved_special_token_N|> (as Llama 3 pads its vocabulary).
// glm: GLM's 10 specials instead (bos_id [gMASK], eos_id <|endoftext|>, eot_id <|user|>).
[[nodiscard]] DemoTokenizer train_demo_tokenizer(int vocab, bool glm = false);

// File contents (JSON text, trailing newline).
[[nodiscard]] std::string demo_tokenizer_json(const DemoTokenizer& t);
[[nodiscard]] std::string demo_tokenizer_config_json(const DemoTokenizer& t);
[[nodiscard]] std::string demo_special_tokens_map_json(const DemoTokenizer& t);

// A SentencePiece tokenizer.model (protobuf written by hand) for the families whose converter needs one (Gemma):
// ids 0..3 <pad> <eos> <bos> <unk>, 256 byte-fallback pieces <0x00>..<0xFF>, "\u2581" and the printable ASCII
// characters, then the demo BPE tokens with their space as U+2581 (score -rank), padded with <unusedN> to `vocab`
// pieces. BPE model type, byte_fallback, no dummy prefix, whitespace kept.
inline constexpr int demo_sp_pad_id = 0, demo_sp_eos_id = 1, demo_sp_bos_id = 2, demo_sp_unk_id = 3;
[[nodiscard]] std::string demo_sentencepiece_model(const DemoTokenizer& t, int vocab);

// GPT-2's byte -> unicode code point map (printable bytes map to themselves, the others to 256 + k).
[[nodiscard]] char32_t gpt2_byte_to_cp(unsigned char b) noexcept;
[[nodiscard]] std::string utf8(char32_t cp);

}  // namespace shardforge::model::detail
