// Writes sample GGUF files with shardforge's writer for the @huggingface/gguf conformance check
// (tests/conformance/gguf_parse.mjs): DIR/single.gguf, DIR/split-0000{1,2,3}-of-00003.gguf and DIR/expectations.json,
// which states per file the intended key types (spelled as in llama.cpp's src/llama-model-loader.cpp,
// tools/gguf-split/gguf-split.cpp), values and tensor declarations.
//   usage: gguf_sample_writer DIR
#include <shardforge/formats.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

namespace sf = shardforge;
using sf::formats::GgufKV;
using sf::formats::GgufTensorDecl;
using sf::formats::GgufValue;
using sf::quant::GgmlType;
using nlohmann::json;

namespace {

struct Sample {
    GgufKV kv;
    json expect;  // {"type": "UINT32", "value": ...} or {"type": "ARRAY", "subType": "INT32", "value": [...]}
};

Sample s(std::string key, GgufValue v, std::string type, json value, std::string sub = "") {
    json e = {{"type", type}, {"value", value}};
    if (!sub.empty()) e["subType"] = sub;
    return {{std::move(key), std::move(v)}, e};
}

void write_file(const std::filesystem::path& path, const std::vector<Sample>& samples,
                const std::vector<GgufTensorDecl>& ts, json& files) {
    std::vector<GgufKV> kvs;
    json kv_expect = json::object();
    for (const auto& x : samples) {
        kvs.push_back(x.kv);
        kv_expect[x.kv.key] = x.expect;
    }
    std::vector<std::vector<std::byte>> data;
    std::vector<std::span<const std::byte>> spans;
    json tj = json::array();
    for (const auto& t : ts) {
        data.emplace_back(sf::formats::gguf_tensor_nbytes(t.ne, t.type));
        for (std::size_t i = 0; i < data.back().size(); ++i) data.back()[i] = std::byte(static_cast<unsigned char>(i));
        tj.push_back({{"name", t.name}, {"ne", t.ne}, {"type", static_cast<int>(t.type)}});
    }
    for (const auto& d : data) spans.emplace_back(d);
    sf::formats::write_gguf(path, kvs, ts, spans);
    files.push_back({{"file", path.filename().string()}, {"kv", kv_expect}, {"tensors", tj}});
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    try {
        const std::filesystem::path dir = argv[1];
        std::filesystem::create_directories(dir);
        json files = json::array();

        const std::vector<Sample> model_kvs = {
            s("general.architecture", GgufValue::string("llama"), "STRING", "llama"),
            s("general.type", GgufValue::string("model"), "STRING", "model"),
            s("general.name", GgufValue::string("Tiny Llama \xe2\x9c\x93"), "STRING", "Tiny Llama \xe2\x9c\x93"),
            s("llama.context_length", GgufValue::u32(2048), "UINT32", 2048),
            s("llama.embedding_length", GgufValue::u32(64), "UINT32", 64),
            s("llama.block_count", GgufValue::u32(2), "UINT32", 2),
            s("llama.feed_forward_length", GgufValue::u32(256), "UINT32", 256),
            s("llama.attention.head_count", GgufValue::u32(4), "UINT32", 4),
            s("llama.attention.head_count_kv", GgufValue::arr_i32({2, 4}), "ARRAY", {2, 4}, "INT32"),
            s("llama.rope.dimension_count", GgufValue::u32(16), "UINT32", 16),
            s("llama.vocab_size", GgufValue::u32(3), "UINT32", 3),
            s("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f), "FLOAT32",
              static_cast<double>(1e-5f)),
            s("llama.rope.freq_base", GgufValue::f32(500000.0f), "FLOAT32", 500000.0),
            s("llama.attention.causal", GgufValue::boolean(true), "BOOL", true),
            s("general.file_type", GgufValue::u32(7), "UINT32", 7),
            s("general.quantization_version", GgufValue::u32(2), "UINT32", 2),
            s("tokenizer.ggml.model", GgufValue::string("gpt2"), "STRING", "gpt2"),
            s("tokenizer.ggml.pre", GgufValue::string("llama-bpe"), "STRING", "llama-bpe"),
            s("tokenizer.ggml.tokens", GgufValue::arr_str({"<s>", "\xc4\xa0the", "</s>"}), "ARRAY",
              {"<s>", "\xc4\xa0the", "</s>"}, "STRING"),
            s("tokenizer.ggml.token_type", GgufValue::arr_i32({3, 1, 3}), "ARRAY", {3, 1, 3}, "INT32"),
            s("tokenizer.ggml.scores", GgufValue::arr_f32({0.0f, -1.5f, 0.25f}), "ARRAY", {0.0, -1.5, 0.25},
              "FLOAT32"),
            s("tokenizer.ggml.merges", GgufValue::arr_str({"\xc4\xa0 t", "h e"}), "ARRAY", {"\xc4\xa0 t", "h e"},
              "STRING"),
            s("tokenizer.ggml.bos_token_id", GgufValue::u32(0), "UINT32", 0),
            s("tokenizer.ggml.eos_token_id", GgufValue::u32(2), "UINT32", 2),
            s("tokenizer.ggml.add_bos_token", GgufValue::boolean(true), "BOOL", true),
            s("tokenizer.ggml.add_eos_token", GgufValue::boolean(false), "BOOL", false),
            s("tokenizer.chat_template", GgufValue::string("{% for m in messages %}{{ m.content }}{% endfor %}"),
              "STRING", "{% for m in messages %}{{ m.content }}{% endfor %}"),
            s("x.u8", GgufValue::u8(250), "UINT8", 250),
            s("x.i8", GgufValue::i8(-120), "INT8", -120),
            s("x.u16", GgufValue::u16(65000), "UINT16", 65000),
            s("x.i16", GgufValue::i16(-32000), "INT16", -32000),
            s("x.i32", GgufValue::i32(-2000000000), "INT32", -2000000000),
            s("x.u64", GgufValue::u64(1ull << 53), "UINT64", "9007199254740992"),
            s("x.i64", GgufValue::i64(-(1ll << 40)), "INT64", "-1099511627776"),
            s("x.f64", GgufValue::f64(0.1), "FLOAT64", 0.1),
            s("x.arr_u8", GgufValue::arr_u8({1, 2, 255}), "ARRAY", {1, 2, 255}, "UINT8"),
            s("x.arr_bool", GgufValue::arr_bool({true, false}), "ARRAY", {true, false}, "BOOL"),
        };
        const std::vector<GgufTensorDecl> tensors = {
            {"token_embd.weight", {64, 3}, GgmlType::Q8_0},
            {"output_norm.weight", {64}, GgmlType::F32},
            {"blk.0.attn_q.weight", {64, 64}, GgmlType::Q8_0},
            {"blk.0.attn_k.weight", {256, 2}, GgmlType::Q4_K},
            {"blk.0.ffn_up.weight", {64, 5, 1}, GgmlType::F16},
            {"blk.1.attn_q.weight", {64, 3}, GgmlType::BF16},
            {"blk.1.ffn_gate_exps.weight", {32, 2, 3}, GgmlType::F32},
        };
        write_file(dir / "single.gguf", model_kvs, tensors, files);

        // Split: max 3 tensors per shard -> 3 shards; only shard 0 carries the model metadata.
        std::vector<std::uint64_t> sizes;
        for (const auto& t : tensors) sizes.push_back(sf::formats::gguf_tensor_nbytes(t.ne, t.type));
        const auto shard = sf::formats::plan_gguf_split(sizes, 0, 3);
        const std::uint32_t n = shard.back() + 1;
        if (n != 3) throw std::runtime_error("expected 3 shards");
        for (std::uint32_t i = 0; i < n; ++i) {
            std::vector<Sample> kvs;
            if (i == 0) kvs.assign(model_kvs.begin(), model_kvs.begin() + 3);
            kvs.push_back(s("split.no", GgufValue::u16(static_cast<std::uint16_t>(i)), "UINT16", i));
            kvs.push_back(s("split.count", GgufValue::u16(3), "UINT16", 3));
            kvs.push_back(s("split.tensors.count", GgufValue::i32(7), "INT32", 7));
            // Cross-check the library's split keys against the intent above.
            const auto lib = sf::formats::gguf_split_kvs(i, n, 7);
            for (std::size_t k = 0; k < 3; ++k)
                if (!(lib[k] == kvs[kvs.size() - 3 + k].kv)) throw std::runtime_error("gguf_split_kvs mismatch");
            std::vector<GgufTensorDecl> mine;
            for (std::size_t t = 0; t < tensors.size(); ++t)
                if (shard[t] == i) mine.push_back(tensors[t]);
            const auto path = sf::formats::gguf_split_name((dir / "split").string(), i, n);
            write_file(path, kvs, mine, files);
        }
        std::ofstream(dir / "expectations.json") << json{{"files", files}, {"split_first", "split-00001-of-00003.gguf"},
                                                         {"split_count", n}, {"split_total_tensors", 7}}
                                                        .dump(2);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gguf_sample_writer: %s\n", e.what());
        return 1;
    }
    return 0;
}
