// Seed maker for the fuzz corpora (used by tests/fuzz/make_seeds.sh):
//   fuzz_plan_seed BASE ADAPTER|- OUTDIR FORMATS FILE   plan::to_json bytes (CBOR, as broadcast) of make_plan
//   fuzz_plan_seed --demo DIR ARCH                      a tiny write_demo model (1 layer, hidden 32, vocab 270)
//   fuzz_plan_seed --gguf FILE                          a small GGUF (scalar/array KVs; F32, F16, Q8_0 tensors)
#include <shardforge/formats.hpp>
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace sf = shardforge;

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "--demo" && argc == 4) {
            sf::model::DemoOptions o;
            if (!sf::model::parse_demo_arch(argv[3], o.arch)) return 2;
            o.n_layer = 1, o.hidden = 32, o.intermediate = 64, o.n_head = 2, o.n_kv_head = 1, o.vocab = 270;
            o.n_shards = 1, o.n_expert = 2, o.n_expert_used = 1, o.lora_rank = 2;
            sf::model::write_demo(argv[2], o);
            return 0;
        }
        if (mode == "--gguf" && argc == 3) {
            using sf::formats::GgufValue;
            const std::vector<sf::formats::GgufKV> kvs{
                {"general.architecture", GgufValue::string("llama")},
                {"general.alignment", GgufValue::u32(32)},
                {"llama.block_count", GgufValue::u32(1)},
                {"llama.rope.freq_base", GgufValue::f32(10000.0f)},
                {"tokenizer.ggml.tokens", GgufValue::arr_str({"<s>", "</s>", "a", "b"})},
                {"tokenizer.ggml.scores", GgufValue::arr_f32({0.0f, 0.0f, -1.0f, -2.0f})},
                {"tokenizer.ggml.token_type", GgufValue::arr_i32({3, 3, 1, 1})},
                {"general.flag", GgufValue::boolean(true)}};
            const std::vector<sf::formats::GgufTensorDecl> decls{
                {"token_embd.weight", {32, 4}, sf::quant::GgmlType::F32},
                {"output_norm.weight", {32}, sf::quant::GgmlType::F16},
                {"blk.0.attn_q.weight", {32, 2}, sf::quant::GgmlType::Q8_0}};
            std::vector<std::vector<std::byte>> data{std::vector<std::byte>(32 * 4 * 4, std::byte{0x3c}),
                                                     std::vector<std::byte>(32 * 2, std::byte{0x01}),
                                                     std::vector<std::byte>(2 * 34, std::byte{0x11})};
            std::vector<std::span<const std::byte>> spans(data.begin(), data.end());
            sf::formats::write_gguf(argv[2], kvs, decls, spans);
            return 0;
        }
        if (argc != 6) {
            std::fprintf(stderr, "usage: %s BASE ADAPTER|- OUTDIR FORMATS FILE | --demo DIR ARCH | --gguf FILE\n",
                         argv[0]);
            return 2;
        }
        sf::plan::Options o;
        o.base = argv[1];
        if (std::string(argv[2]) != "-") o.adapters = {{argv[2], 1.0f}};
        o.out = argv[3];
        o.outputs = sf::plan::parse_formats(argv[4]);
        o.max_shard_size = 20'000;
        o.split_max_tensors = 8;
        const std::string bytes = sf::plan::to_json(sf::plan::make_plan(o));
        std::ofstream(argv[5], std::ios::binary) << bytes;
        std::printf("%s: %zu bytes\n", argv[5], bytes.size());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
