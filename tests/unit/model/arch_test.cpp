// HF -> GGUF conversion map. Expected names, shapes, sources, transforms and KVs are written by hand from
// llama.cpp's convert_hf_to_gguf.py (name map, transforms, key types, per-family keys) and llama.cpp's
// conversion/*.py, never produced by the code under test.
#include <shardforge/model.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace sf = shardforge;
using sf::core::DType;
using sf::core::Error;
using sf::core::ErrorKind;
using sf::core::Shape;
using sf::formats::GgufKV;
using sf::formats::GgufValue;
using sf::model::GgufConversion;
using sf::model::HfTensor;
using sf::model::SourceSlice;
using sf::model::Transform;
using sf::model::TransformKind;

namespace {

sf::model::HfConfig parse(const std::string& text) { return sf::model::parse_hf_config(nlohmann::json::parse(text)); }

HfTensor t(std::string name, Shape shape, std::string file = "model.safetensors", DType dt = DType::BF16) {
    return {std::move(name), dt, std::move(shape), std::move(file)};
}

struct Want {
    std::string name;
    Shape shape;
    std::vector<SourceSlice> sources;
    std::vector<Transform> transforms = {};
    bool f32 = false;
};

std::vector<SourceSlice> src(std::initializer_list<const char*> names) {
    std::vector<SourceSlice> v;
    for (const char* n : names) v.push_back({n});
    return v;
}

const Transform permute(std::int64_t heads) { return {TransformKind::PermuteLlamaHeads, heads}; }
const Transform add_one{TransformKind::AddOne, 0};

std::string show(const std::vector<sf::model::GgufTensorMap>& ts) {
    std::string s;
    for (const auto& m : ts) s += "  " + m.gguf_name + " " + sf::core::shape_str(m.shape) + "\n";
    return s;
}

void expect_tensors(const GgufConversion& c, const std::vector<Want>& want) {
    ASSERT_EQ(c.tensors.size(), want.size()) << show(c.tensors);
    for (std::size_t i = 0; i < want.size(); ++i) {
        const auto& got = c.tensors[i];
        SCOPED_TRACE("tensor #" + std::to_string(i) + " " + want[i].name);
        EXPECT_EQ(got.gguf_name, want[i].name) << show(c.tensors);
        EXPECT_EQ(got.shape, want[i].shape);
        EXPECT_EQ(got.sources, want[i].sources);
        EXPECT_EQ(got.transforms, want[i].transforms);
        EXPECT_EQ(got.force_f32, want[i].f32);
    }
}

std::string show(const std::vector<GgufKV>& kvs) {
    std::string s;
    for (const auto& kv : kvs) s += "  " + kv.key + " (" + std::string(sf::formats::gguf_type_name(kv.value.type)) + ")\n";
    return s;
}

void expect_kvs(const std::vector<GgufKV>& got, const std::vector<GgufKV>& want) {
    ASSERT_EQ(got.size(), want.size()) << show(got);
    for (std::size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE("kv #" + std::to_string(i) + " " + want[i].key);
        EXPECT_EQ(got[i].key, want[i].key) << show(got);
        EXPECT_EQ(got[i].value.type, want[i].value.type);
        EXPECT_TRUE(got[i].value == want[i].value) << "value differs";
    }
}

template <class F>
Error capture(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "no shardforge::core::Error thrown";
    return Error(ErrorKind::Internal, "", "", "none");
}

GgufKV u32(const char* k, std::uint32_t v) { return {k, GgufValue::u32(v)}; }
GgufKV f32(const char* k, float v) { return {k, GgufValue::f32(v)}; }
GgufKV str(const char* k, const char* v) { return {k, GgufValue::string(v)}; }

}  // namespace

// ---------------------------------------------------------------------------------------------- architectures

TEST(GgufConversion, RefusesAnUnknownArchitectureListingTheSupportedOnes) {
    const auto cfg = parse(R"({"architectures": ["GPTNeoXForCausalLM"], "num_hidden_layers": 2})");
    const Error e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {}); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    const std::string what = e.what();
    EXPECT_NE(what.find("GPTNeoXForCausalLM"), std::string::npos) << what;
    for (const char* a : {"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM", "Qwen2ForCausalLM",
                          "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "GemmaForCausalLM",
                          "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration",
                          "Phi3ForCausalLM", "Qwen3_5ForCausalLM", "Qwen3_5ForConditionalGeneration",
                          "Qwen3_5MoeForCausalLM", "Qwen3_5MoeForConditionalGeneration",
                          "Mistral3ForConditionalGeneration", "Ministral3ForCausalLM", "Glm4MoeForCausalLM", "Qwen3NextForCausalLM",
                          "Gemma4ForCausalLM", "Gemma4ForConditionalGeneration", "DeepseekV3ForCausalLM",
                          "GptOssForCausalLM", "MiniMaxM2ForCausalLM", "Llama4ForConditionalGeneration",
                          "Llama4ForCausalLM", "Gemma3nForCausalLM", "Gemma3nForConditionalGeneration"})
        EXPECT_NE(what.find(a), std::string::npos) << a << " missing from: " << what;
    EXPECT_EQ(sf::model::supported_architectures().size(), 29u);
    EXPECT_EQ(sf::model::gguf_arch_name("Gemma3nForConditionalGeneration"), "gemma3n");
    EXPECT_EQ(sf::model::gguf_arch_name("MiniMaxM2ForCausalLM"), "minimax-m2");
    EXPECT_EQ(sf::model::gguf_arch_name("Llama4ForConditionalGeneration"), "llama4");
    EXPECT_EQ(sf::model::gguf_arch_name("DeepseekV3ForCausalLM"), "deepseek2");
    EXPECT_EQ(sf::model::gguf_arch_name("MixtralForCausalLM"), "llama");
    EXPECT_EQ(sf::model::gguf_arch_name("Gemma3ForConditionalGeneration"), "gemma3");
    EXPECT_EQ(sf::model::gguf_arch_name("Ministral3ForCausalLM"), "mistral3");
}

TEST(GgufConversion, RefusesAnUnmappableTensorNamingIt) {
    // Phi-3 has no separate ffn_gate (MODEL_TENSORS[PHI3]): mlp.gate_proj maps to nothing.
    const auto cfg = parse(R"({"architectures": ["Phi3ForCausalLM"], "num_hidden_layers": 1})");
    const Error e = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            cfg, {t("model.embed_tokens.weight", {8, 4}, "model-00001-of-00002.safetensors"),
                  t("model.layers.0.mlp.gate_proj.weight", {6, 4}, "model-00002-of-00002.safetensors")});
    });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), "model.layers.0.mlp.gate_proj.weight");
    EXPECT_EQ(e.file(), "model-00002-of-00002.safetensors");

    const auto llama = parse(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1,
        "num_attention_heads": 1})");
    const Error e2 = capture([&] {
        (void)sf::model::plan_gguf_conversion(llama, {t("model.layers.0.self_attn.q_norm.weight", {4})});
    });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e2.tensor(), "model.layers.0.self_attn.q_norm.weight");
}

// Llama 3.x: rope_freqs generated first; two part files visited in file-name order, tensors sorted by name
// (so layer 10 comes before layer 2); rotary inv_freq dropped; Q/K un-permuted with n_head / n_kv_head.
TEST(GgufConversion, Llama3MapsPermutesAndOrdersLikeTheConverter) {
    const auto cfg = parse(R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "num_hidden_layers": 11, "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
        "rope_theta": 500000.0, "vocab_size": 128, "tie_word_embeddings": false,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
    const std::string p1 = "model-00001-of-00002.safetensors", p2 = "model-00002-of-00002.safetensors";
    // given out of order on purpose
    const std::vector<HfTensor> in{
        t("model.norm.weight", {64}, p2),
        t("model.layers.2.input_layernorm.weight", {64}, p2),
        t("model.layers.0.self_attn.q_proj.weight", {64, 64}, p1),
        t("model.layers.0.self_attn.k_proj.weight", {32, 64}, p1),
        t("model.layers.0.self_attn.v_proj.weight", {32, 64}, p1),
        t("model.layers.0.self_attn.o_proj.weight", {64, 64}, p1),
        t("model.layers.0.self_attn.rotary_emb.inv_freq", {8}, p1, DType::F32),
        t("model.layers.0.mlp.gate_proj.weight", {96, 64}, p1),
        t("model.layers.0.mlp.up_proj.weight", {96, 64}, p1),
        t("model.layers.0.mlp.down_proj.weight", {64, 96}, p1),
        t("model.layers.0.input_layernorm.weight", {64}, p1),
        t("model.layers.0.post_attention_layernorm.weight", {64}, p1),
        t("model.embed_tokens.weight", {128, 64}, p1),
        t("model.layers.10.input_layernorm.weight", {64}, p2),
        t("lm_head.weight", {128, 64}, p2),
    };
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, in);
    EXPECT_EQ(c.arch, "llama");
    expect_tensors(c, {
        {"rope_freqs.weight", {8}, {}, {}, true},
        {"token_embd.weight", {128, 64}, src({"model.embed_tokens.weight"})},
        {"blk.0.attn_norm.weight", {64}, src({"model.layers.0.input_layernorm.weight"}), {}, true},
        {"blk.0.ffn_down.weight", {64, 96}, src({"model.layers.0.mlp.down_proj.weight"})},
        {"blk.0.ffn_gate.weight", {96, 64}, src({"model.layers.0.mlp.gate_proj.weight"})},
        {"blk.0.ffn_up.weight", {96, 64}, src({"model.layers.0.mlp.up_proj.weight"})},
        {"blk.0.ffn_norm.weight", {64}, src({"model.layers.0.post_attention_layernorm.weight"}), {}, true},
        {"blk.0.attn_k.weight", {32, 64}, src({"model.layers.0.self_attn.k_proj.weight"}), {permute(2)}},
        {"blk.0.attn_output.weight", {64, 64}, src({"model.layers.0.self_attn.o_proj.weight"})},
        {"blk.0.attn_q.weight", {64, 64}, src({"model.layers.0.self_attn.q_proj.weight"}), {permute(4)}},
        {"blk.0.attn_v.weight", {32, 64}, src({"model.layers.0.self_attn.v_proj.weight"})},
        {"output.weight", {128, 64}, src({"lm_head.weight"})},
        {"blk.10.attn_norm.weight", {64}, src({"model.layers.10.input_layernorm.weight"}), {}, true},
        {"blk.2.attn_norm.weight", {64}, src({"model.layers.2.input_layernorm.weight"}), {}, true},
        {"output_norm.weight", {64}, src({"model.norm.weight"}), {}, true},
    });
    EXPECT_EQ(c.dropped, std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
    EXPECT_EQ(c.n_vocab_embed, 128);
    // Llama 3.1 factors for head_dim 16, base 500000: wavelen 2*pi*500000^(2k/16); < 2048 -> 1, > 8192 -> 8.
    // k=0: 6.28, k=1: 32.4, k=2: 167, k=3: 861 -> 1; k=4: 2*pi*sqrt(500000) = 4442.9 -> smooth; k=5..7 (22.9k..) -> 8.
    ASSERT_EQ(c.tensors[0].generated.size(), 8u);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(c.tensors[0].generated[k], 1.0f) << k;
    EXPECT_GT(c.tensors[0].generated[4], 1.0f);
    EXPECT_LT(c.tensors[0].generated[4], 8.0f);
    for (int k = 5; k < 8; ++k) EXPECT_EQ(c.tensors[0].generated[k], 8.0f) << k;
    // smooth = (8192 / 4442.88 - 1) / 3 = 0.28128; 1 / ((1 - s) / 8 + s) = 2.69453 (by hand, in double)
    EXPECT_NEAR(c.tensors[0].generated[4], 2.69453, 5e-4);

    expect_kvs(c.arch_kvs, {
        u32("llama.block_count", 11),
        u32("llama.context_length", 131072),
        u32("llama.embedding_length", 64),
        u32("llama.feed_forward_length", 96),
        u32("llama.attention.head_count", 4),
        u32("llama.attention.head_count_kv", 2),
        f32("llama.rope.freq_base", 500000.0f),
        f32("llama.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("llama.vocab_size", 128),
        u32("llama.rope.dimension_count", 16),
    });
    EXPECT_EQ(c.file_type_pos, 8u);  // general.file_type closes the base set, before vocab_size
    EXPECT_TRUE(c.early_kvs.empty());
    EXPECT_EQ(c.auto_ftype, sf::quant::FType::BF16);
}

TEST(GgufConversion, MistralWithExplicitHeadDimWritesKeyLengthAndNoRopeFreqs) {
    const auto cfg = parse(R"({"architectures": ["MistralForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 32, "max_position_embeddings": 1024, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
        "vocab_size": 100, "sliding_window": null})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("model.layers.0.self_attn.q_proj.weight", {128, 64}), t("model.layers.0.self_attn.k_proj.weight", {64, 64})});
    expect_tensors(c, {
        {"blk.0.attn_k.weight", {64, 64}, src({"model.layers.0.self_attn.k_proj.weight"}), {permute(2)}},
        {"blk.0.attn_q.weight", {128, 64}, src({"model.layers.0.self_attn.q_proj.weight"}), {permute(4)}},
    });
    expect_kvs(c.arch_kvs, {
        u32("llama.block_count", 1),
        u32("llama.context_length", 1024),
        u32("llama.embedding_length", 64),
        u32("llama.feed_forward_length", 96),
        u32("llama.attention.head_count", 4),
        u32("llama.attention.head_count_kv", 2),
        f32("llama.rope.freq_base", 1000000.0f),
        f32("llama.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("llama.attention.key_length", 32),
        u32("llama.attention.value_length", 32),
        u32("llama.vocab_size", 100),
        u32("llama.rope.dimension_count", 32),
    });
    EXPECT_EQ(c.file_type_pos, 10u);
}

TEST(GgufConversion, LlamaRefusesQRowsNotDivisibleByHeads) {
    const auto cfg = parse(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1,
        "num_attention_heads": 4, "vocab_size": 8})");
    const Error e = capture([&] {
        (void)sf::model::plan_gguf_conversion(cfg, {t("model.layers.0.self_attn.q_proj.weight", {12, 4})});
    });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), "model.layers.0.self_attn.q_proj.weight");
}

// Mixtral: experts buffered per layer and stacked w1, w2, w3 when the last of 3 * n_expert arrives.
TEST(GgufConversion, MixtralStacksExpertsWhenTheLastArrives) {
    const auto cfg = parse(R"({"architectures": ["MixtralForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 4,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "vocab_size": 32,
        "num_local_experts": 2, "num_experts_per_tok": 2})");
    const std::string e = "model.layers.0.block_sparse_moe.experts.";
    std::vector<HfTensor> in{t("model.layers.0.block_sparse_moe.gate.weight", {2, 64})};
    for (int x = 1; x >= 0; --x) {
        in.push_back(t(e + std::to_string(x) + ".w1.weight", {96, 64}));
        in.push_back(t(e + std::to_string(x) + ".w2.weight", {64, 96}));
        in.push_back(t(e + std::to_string(x) + ".w3.weight", {96, 64}));
    }
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, in);
    expect_tensors(c, {
        {"blk.0.ffn_gate_exps.weight", {2, 96, 64}, src({(e + "0.w1.weight").c_str(), (e + "1.w1.weight").c_str()})},
        {"blk.0.ffn_down_exps.weight", {2, 64, 96}, src({(e + "0.w2.weight").c_str(), (e + "1.w2.weight").c_str()})},
        {"blk.0.ffn_up_exps.weight", {2, 96, 64}, src({(e + "0.w3.weight").c_str(), (e + "1.w3.weight").c_str()})},
        {"blk.0.ffn_gate_inp.weight", {2, 64}, src({"model.layers.0.block_sparse_moe.gate.weight"}), {}, true},
    });
    expect_kvs(c.arch_kvs, {
        u32("llama.block_count", 1),
        u32("llama.context_length", 4096),
        u32("llama.embedding_length", 64),
        u32("llama.feed_forward_length", 96),
        u32("llama.attention.head_count", 4),
        u32("llama.attention.head_count_kv", 4),
        f32("llama.rope.freq_base", 1000000.0f),
        f32("llama.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("llama.expert_count", 2),
        u32("llama.expert_used_count", 2),
        u32("llama.vocab_size", 32),
        u32("llama.rope.dimension_count", 16),
    });
    // per expert 3 * 96 * 64 = 18432, shared 2 * 64 = 128: 18560 -> "19K" (no decimals at two digits)
    EXPECT_EQ(sf::model::size_label(c), "2x19K");
}

TEST(GgufConversion, MixtralRefusesAnIncompleteExpertSet) {
    const auto cfg = parse(R"({"architectures": ["MixtralForCausalLM"], "num_hidden_layers": 1,
        "num_attention_heads": 1, "vocab_size": 8, "num_local_experts": 2})");
    const Error e = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            cfg, {t("model.layers.0.block_sparse_moe.experts.0.w1.weight", {4, 4}),
                  t("model.layers.0.block_sparse_moe.experts.0.w2.weight", {4, 4})});
    });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(e.tensor().find("block_sparse_moe.experts.0"), std::string::npos) << e.what();
}

// Qwen2: q/k/v biases kept (F32, 1-D), no permutation (NEOX rope), tied embeddings -> no output tensor.
TEST(GgufConversion, Qwen2KeepsBiasesAndDoesNotPermute) {
    const auto cfg = parse(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "vocab_size": 151,
        "tie_word_embeddings": true, "sliding_window": 32768, "use_sliding_window": false})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("model.embed_tokens.weight", {151, 64}), t("model.layers.0.self_attn.q_proj.bias", {64}),
              t("model.layers.0.self_attn.q_proj.weight", {64, 64}), t("model.layers.0.self_attn.k_proj.bias", {32}),
              t("model.layers.0.self_attn.k_proj.weight", {32, 64})});
    expect_tensors(c, {
        {"token_embd.weight", {151, 64}, src({"model.embed_tokens.weight"})},
        {"blk.0.attn_k.bias", {32}, src({"model.layers.0.self_attn.k_proj.bias"}), {}, true},
        {"blk.0.attn_k.weight", {32, 64}, src({"model.layers.0.self_attn.k_proj.weight"})},
        {"blk.0.attn_q.bias", {64}, src({"model.layers.0.self_attn.q_proj.bias"}), {}, true},
        {"blk.0.attn_q.weight", {64, 64}, src({"model.layers.0.self_attn.q_proj.weight"})},
    });
    expect_kvs(c.arch_kvs, {
        u32("qwen2.block_count", 1),
        u32("qwen2.context_length", 32768),
        u32("qwen2.embedding_length", 64),
        u32("qwen2.feed_forward_length", 96),
        u32("qwen2.attention.head_count", 4),
        u32("qwen2.attention.head_count_kv", 2),
        f32("qwen2.rope.freq_base", 1000000.0f),
        f32("qwen2.attention.layer_norm_rms_epsilon", 1e-06f),
    });
    EXPECT_EQ(c.file_type_pos, 8u);
}

// Qwen2-MoE: per-expert tensors stacked down, gate, up; router and shared-expert gate stay F32.
TEST(GgufConversion, Qwen2MoeStacksExpertsAndMapsSharedExperts) {
    const auto cfg = parse(R"({"architectures": ["Qwen2MoeForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 160, "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 4,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "vocab_size": 100,
        "num_experts": 2, "num_experts_per_tok": 1, "tie_word_embeddings": false})");
    const std::string l = "model.layers.0.mlp.";
    std::vector<HfTensor> in{t("lm_head.weight", {100, 64}), t(l + "gate.weight", {2, 64}),
                             t(l + "shared_expert.gate_proj.weight", {128, 64}),
                             t(l + "shared_expert.up_proj.weight", {128, 64}),
                             t(l + "shared_expert.down_proj.weight", {64, 128}),
                             t(l + "shared_expert_gate.weight", {1, 64})};
    for (int x = 0; x < 2; ++x) {
        in.push_back(t(l + "experts." + std::to_string(x) + ".gate_proj.weight", {32, 64}));
        in.push_back(t(l + "experts." + std::to_string(x) + ".up_proj.weight", {32, 64}));
        in.push_back(t(l + "experts." + std::to_string(x) + ".down_proj.weight", {64, 32}));
    }
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, in);
    auto ex = [&](int x, const char* w) { return l + "experts." + std::to_string(x) + "." + w + ".weight"; };
    expect_tensors(c, {
        {"output.weight", {100, 64}, src({"lm_head.weight"})},
        {"blk.0.ffn_down_exps.weight", {2, 64, 32}, src({ex(0, "down_proj").c_str(), ex(1, "down_proj").c_str()})},
        {"blk.0.ffn_gate_exps.weight", {2, 32, 64}, src({ex(0, "gate_proj").c_str(), ex(1, "gate_proj").c_str()})},
        {"blk.0.ffn_up_exps.weight", {2, 32, 64}, src({ex(0, "up_proj").c_str(), ex(1, "up_proj").c_str()})},
        {"blk.0.ffn_gate_inp.weight", {2, 64}, src({"model.layers.0.mlp.gate.weight"}), {}, true},
        {"blk.0.ffn_down_shexp.weight", {64, 128}, src({"model.layers.0.mlp.shared_expert.down_proj.weight"})},
        {"blk.0.ffn_gate_shexp.weight", {128, 64}, src({"model.layers.0.mlp.shared_expert.gate_proj.weight"})},
        {"blk.0.ffn_up_shexp.weight", {128, 64}, src({"model.layers.0.mlp.shared_expert.up_proj.weight"})},
        {"blk.0.ffn_gate_inp_shexp.weight", {1, 64}, src({"model.layers.0.mlp.shared_expert_gate.weight"}), {}, true},
    });
    expect_kvs(c.arch_kvs, {
        u32("qwen2moe.block_count", 1),
        u32("qwen2moe.context_length", 8192),
        u32("qwen2moe.embedding_length", 64),
        u32("qwen2moe.feed_forward_length", 160),
        u32("qwen2moe.attention.head_count", 4),
        u32("qwen2moe.attention.head_count_kv", 4),
        f32("qwen2moe.rope.freq_base", 1000000.0f),
        f32("qwen2moe.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("qwen2moe.expert_count", 2),
        u32("qwen2moe.expert_used_count", 1),
        u32("qwen2moe.expert_feed_forward_length", 32),
        u32("qwen2moe.expert_shared_feed_forward_length", 128),
    });
    EXPECT_EQ(c.file_type_pos, 10u);
}

TEST(GgufConversion, Qwen2MoeWithTiedEmbeddingsGetsTheRequiredOutputFromTokenEmbd) {
    const auto cfg = parse(R"({"architectures": ["Qwen2MoeForCausalLM"], "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_experts": 2, "tie_word_embeddings": true})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("model.embed_tokens.weight", {100, 64}), t("model.norm.weight", {64})});
    expect_tensors(c, {
        {"token_embd.weight", {100, 64}, src({"model.embed_tokens.weight"})},
        {"output.weight", {100, 64}, src({"model.embed_tokens.weight"})},
        {"output_norm.weight", {64}, src({"model.norm.weight"}), {}, true},
    });
}

// Qwen3-MoE, transformers' fused expert format: down_proj [E, n_embd, n_ff] kept, gate_up_proj [E, 2 n_ff, n_embd]
// split on dim -2, gate half first; q_norm / k_norm mapped, not shifted.
TEST(GgufConversion, Qwen3MoeSplitsFusedGateUpExperts) {
    const auto cfg = parse(R"({"architectures": ["Qwen3MoeForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 192, "moe_intermediate_size": 48, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 32, "max_position_embeddings": 40960, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "vocab_size": 100, "num_experts": 4, "num_experts_per_tok": 2})");
    const std::string l = "model.layers.0.";
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t(l + "mlp.gate.weight", {4, 64}), t(l + "mlp.experts.gate_up_proj", {4, 96, 64}),
              t(l + "mlp.experts.down_proj", {4, 64, 48}), t(l + "self_attn.q_norm.weight", {32}),
              t(l + "self_attn.k_norm.weight", {32})});
    expect_tensors(c, {
        {"blk.0.ffn_down_exps.weight", {4, 64, 48}, src({"model.layers.0.mlp.experts.down_proj"})},
        {"blk.0.ffn_gate_exps.weight", {4, 48, 64}, {{"model.layers.0.mlp.experts.gate_up_proj", 0, 48}}},
        {"blk.0.ffn_up_exps.weight", {4, 48, 64}, {{"model.layers.0.mlp.experts.gate_up_proj", 48, 96}}},
        {"blk.0.ffn_gate_inp.weight", {4, 64}, src({"model.layers.0.mlp.gate.weight"}), {}, true},
        {"blk.0.attn_k_norm.weight", {32}, src({"model.layers.0.self_attn.k_norm.weight"}), {}, true},
        {"blk.0.attn_q_norm.weight", {32}, src({"model.layers.0.self_attn.q_norm.weight"}), {}, true},
    });
    expect_kvs(c.arch_kvs, {
        u32("qwen3moe.block_count", 1),
        u32("qwen3moe.context_length", 40960),
        u32("qwen3moe.embedding_length", 64),
        u32("qwen3moe.feed_forward_length", 192),
        u32("qwen3moe.attention.head_count", 4),
        u32("qwen3moe.attention.head_count_kv", 2),
        f32("qwen3moe.rope.freq_base", 1000000.0f),
        f32("qwen3moe.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("qwen3moe.expert_count", 4),
        u32("qwen3moe.expert_used_count", 2),
        u32("qwen3moe.attention.key_length", 32),
        u32("qwen3moe.attention.value_length", 32),
        u32("qwen3moe.expert_feed_forward_length", 48),
    });
}

namespace {
SourceSlice cols(const char* name, std::int64_t begin, std::int64_t step, bool transpose) {
    SourceSlice s{name};
    s.col_begin = begin;
    s.col_step = step;
    s.transpose = transpose;
    return s;
}
const char* gpt_oss_config = R"({"architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
    "num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 131072, "rms_norm_eps": 1e-05,
    "rope_theta": 150000, "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
    "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false}, "sliding_window": 128,
    "layer_types": ["sliding_attention"], "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 2,
    "experts_per_token": 2})";
}  // namespace

// llama.cpp's conversion/gpt_oss.py: transformers' fused experts gate_up_proj [E, H, 2F] (gate and up interleaved in
// the last dim) become ffn_gate_exps = [..., ::2] and ffn_up_exps = [..., 1::2], transposed to [E, F, H];
// down_proj [E, F, H] is transposed to [E, H, F]; the biases split the same way (f32: not ".weight"); the sinks
// get ".weight"; the router maps to ffn_gate_inp; post_attention_layernorm is post_attention_norm.
TEST(GgufConversion, GptOssSplitsInterleavedExpertsAndTransposes) {
    const auto cfg = parse(gpt_oss_config);
    const std::string l = "model.layers.0.";
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t(l + "mlp.experts.gate_up_proj", {4, 64, 64}), t(l + "mlp.experts.gate_up_proj_bias", {4, 64}),
              t(l + "mlp.experts.down_proj", {4, 32, 64}), t(l + "mlp.experts.down_proj_bias", {4, 64}),
              t(l + "mlp.router.weight", {4, 64}), t(l + "mlp.router.bias", {4}), t(l + "self_attn.sinks", {4}),
              t(l + "post_attention_layernorm.weight", {64}), t(l + "self_attn.o_proj.bias", {64})});
    EXPECT_EQ(c.arch, "gpt-oss");
    expect_tensors(c, {
        {"blk.0.ffn_down_exps.weight", {4, 64, 32}, {cols("model.layers.0.mlp.experts.down_proj", 0, 1, true)}},
        {"blk.0.ffn_down_exps.bias", {4, 64}, src({"model.layers.0.mlp.experts.down_proj_bias"}), {}, true},
        {"blk.0.ffn_gate_exps.weight", {4, 32, 64}, {cols("model.layers.0.mlp.experts.gate_up_proj", 0, 2, true)}},
        {"blk.0.ffn_up_exps.weight", {4, 32, 64}, {cols("model.layers.0.mlp.experts.gate_up_proj", 1, 2, true)}},
        {"blk.0.ffn_gate_exps.bias", {4, 32}, {cols("model.layers.0.mlp.experts.gate_up_proj_bias", 0, 2, false)}, {}, true},
        {"blk.0.ffn_up_exps.bias", {4, 32}, {cols("model.layers.0.mlp.experts.gate_up_proj_bias", 1, 2, false)}, {}, true},
        {"blk.0.ffn_gate_inp.bias", {4}, src({"model.layers.0.mlp.router.bias"}), {}, true},
        {"blk.0.ffn_gate_inp.weight", {4, 64}, src({"model.layers.0.mlp.router.weight"}), {}, true},
        {"blk.0.post_attention_norm.weight", {64}, src({"model.layers.0.post_attention_layernorm.weight"}), {}, true},
        {"blk.0.attn_output.bias", {64}, src({"model.layers.0.self_attn.o_proj.bias"}), {}, true},
        {"blk.0.attn_sinks.weight", {4}, src({"model.layers.0.self_attn.sinks"}), {}, true},
    });
    expect_kvs(c.arch_kvs, {
        u32("gpt-oss.block_count", 1),
        u32("gpt-oss.context_length", 131072),
        u32("gpt-oss.embedding_length", 64),
        u32("gpt-oss.feed_forward_length", 32),
        u32("gpt-oss.attention.head_count", 4),
        u32("gpt-oss.attention.head_count_kv", 2),
        str("gpt-oss.rope.scaling.type", "yarn"),
        f32("gpt-oss.rope.scaling.factor", 32.0f),
        u32("gpt-oss.rope.scaling.original_context_length", 4096),
        f32("gpt-oss.rope.scaling.yarn_beta_fast", 32.0f),
        f32("gpt-oss.rope.scaling.yarn_beta_slow", 1.0f),
        f32("gpt-oss.rope.freq_base", 150000.0f),
        f32("gpt-oss.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("gpt-oss.expert_count", 4),
        u32("gpt-oss.expert_used_count", 2),
        u32("gpt-oss.attention.key_length", 16),
        u32("gpt-oss.attention.value_length", 16),
        u32("gpt-oss.attention.sliding_window", 128),
        u32("gpt-oss.expert_feed_forward_length", 32),
    });
}

// MXFP4 experts (the plan's logical *_blocks tensors [E, out, in]): written first as GptOssModel.generate_extra_tensors
// does, flagged MXFP4 (every converter outtype), gate/up as the even/odd rows; f32/f16/bf16 are labelled MXFP4_MOE.
TEST(GgufConversion, GptOssMxfp4ExpertsComeFirstAsEvenAndOddRows) {
    auto j = nlohmann::json::parse(gpt_oss_config);
    j["quantization_config"] = {{"quant_method", "mxfp4"}};
    const auto cfg = sf::model::parse_hf_config(j);
    const std::string l = "model.layers.0.";
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t(l + "input_layernorm.weight", {64}), t(l + "mlp.experts.down_proj_blocks", {4, 64, 32}),
              t(l + "mlp.experts.gate_up_proj_blocks", {4, 64, 64})});
    ASSERT_EQ(c.tensors.size(), 4u) << show(c.tensors);
    EXPECT_EQ(c.tensors[0].gguf_name, "blk.0.ffn_down_exps.weight");
    EXPECT_EQ(c.tensors[0].shape, (Shape{4, 64, 32}));
    EXPECT_EQ(c.tensors[1].gguf_name, "blk.0.ffn_gate_exps.weight");
    EXPECT_EQ(c.tensors[2].gguf_name, "blk.0.ffn_up_exps.weight");
    EXPECT_EQ(c.tensors[3].gguf_name, "blk.0.attn_norm.weight");
    for (int i = 1; i <= 2; ++i) {
        EXPECT_EQ(c.tensors[i].shape, (Shape{4, 32, 64}));
        ASSERT_EQ(c.tensors[i].sources.size(), 1u);
        EXPECT_EQ(c.tensors[i].sources[0].row_begin, i - 1);
        EXPECT_EQ(c.tensors[i].sources[0].row_step, 2);
    }
    for (int i = 0; i < 3; ++i) {
        EXPECT_TRUE(c.tensors[i].mxfp4);
        EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[i], sf::quant::FType::F32), sf::quant::GgmlType::MXFP4);
    }
    EXPECT_FALSE(c.tensors[3].mxfp4);
    EXPECT_EQ(sf::model::outtype_file_type(sf::model::OutType::F16, c), sf::quant::FType::MXFP4_MOE);
    EXPECT_EQ(sf::model::outtype_file_type(sf::model::OutType::Q8_0, c), sf::quant::FType::Q8_0);
    EXPECT_EQ(sf::model::outtype_ftype(sf::model::OutType::F16, c), sf::quant::FType::F16);
}

TEST(GgufConversion, GptOssRefusesMalformedFusedExperts) {
    const auto cfg = parse(gpt_oss_config);
    const std::string l = "model.layers.0.";
    Error e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {t(l + "mlp.experts.gate_up_proj", {4, 64, 63})}); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), l + "mlp.experts.gate_up_proj");
    EXPECT_NE(std::string(e.what()).find("must be even"), std::string::npos) << e.what();
    e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {t(l + "mlp.experts.down_proj", {32, 64})}); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("3-D fused expert"), std::string::npos) << e.what();
    auto no_window = nlohmann::json::parse(gpt_oss_config);
    no_window.erase("sliding_window");
    e = capture([&] { (void)sf::model::plan_gguf_conversion(sf::model::parse_hf_config(no_window), {}); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e.what()).find("sliding_window"), std::string::npos) << e.what();
}

TEST(GgufConversion, Qwen3MapsQkNormsWithoutShift) {
    const auto cfg = parse(R"({"architectures": ["Qwen3ForCausalLM"], "num_hidden_layers": 1,
        "num_attention_heads": 2, "head_dim": 8})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("model.layers.0.self_attn.q_norm.weight", {8}), t("model.layers.0.mlp.gate_proj.weight", {6, 4})});
    expect_tensors(c, {
        {"blk.0.ffn_gate.weight", {6, 4}, src({"model.layers.0.mlp.gate_proj.weight"})},
        {"blk.0.attn_q_norm.weight", {8}, src({"model.layers.0.self_attn.q_norm.weight"}), {}, true},
    });
    expect_kvs(c.arch_kvs, {u32("qwen3.block_count", 1), u32("qwen3.attention.head_count", 2),
                            u32("qwen3.attention.key_length", 8), u32("qwen3.attention.value_length", 8)});
}

// Gemma: lm_head dropped, every "*norm.weight" + 1, own KV list (not the base one).
TEST(GgufConversion, GemmaDropsLmHeadAndShiftsNorms) {
    const auto cfg = parse(R"({"architectures": ["GemmaForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 1,
        "head_dim": 16, "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "rope_theta": 10000.0,
        "vocab_size": 256})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("lm_head.weight", {256, 64}), t("model.embed_tokens.weight", {256, 64}),
              t("model.norm.weight", {64}), t("model.layers.0.input_layernorm.weight", {64}),
              t("model.layers.0.post_attention_layernorm.weight", {64})});
    expect_tensors(c, {
        {"token_embd.weight", {256, 64}, src({"model.embed_tokens.weight"})},
        {"blk.0.attn_norm.weight", {64}, src({"model.layers.0.input_layernorm.weight"}), {add_one}, true},
        {"blk.0.ffn_norm.weight", {64}, src({"model.layers.0.post_attention_layernorm.weight"}), {add_one}, true},
        {"output_norm.weight", {64}, src({"model.norm.weight"}), {add_one}, true},
    });
    EXPECT_EQ(c.dropped, std::vector<std::string>{"lm_head.weight"});
    expect_kvs(c.arch_kvs, {
        u32("gemma.context_length", 8192),
        u32("gemma.embedding_length", 64),
        u32("gemma.block_count", 1),
        u32("gemma.feed_forward_length", 96),
        u32("gemma.attention.head_count", 4),
        u32("gemma.attention.head_count_kv", 1),
        f32("gemma.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("gemma.attention.key_length", 16),
        u32("gemma.attention.value_length", 16),
    });
    EXPECT_EQ(c.file_type_pos, 9u);
}

TEST(GgufConversion, Gemma2MapsItsFourNormsAndSoftcaps) {
    const auto cfg = parse(R"({"architectures": ["Gemma2ForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "max_position_embeddings": 8192, "rms_norm_eps": 1e-06, "vocab_size": 256,
        "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "sliding_window": 4096})");
    const std::string l = "model.layers.0.";
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t(l + "input_layernorm.weight", {64}), t(l + "post_attention_layernorm.weight", {64}),
              t(l + "pre_feedforward_layernorm.weight", {64}), t(l + "post_feedforward_layernorm.weight", {64})});
    expect_tensors(c, {
        {"blk.0.attn_norm.weight", {64}, src({"model.layers.0.input_layernorm.weight"}), {add_one}, true},
        {"blk.0.post_attention_norm.weight", {64}, src({"model.layers.0.post_attention_layernorm.weight"}), {add_one}, true},
        {"blk.0.post_ffw_norm.weight", {64}, src({"model.layers.0.post_feedforward_layernorm.weight"}), {add_one}, true},
        {"blk.0.ffn_norm.weight", {64}, src({"model.layers.0.pre_feedforward_layernorm.weight"}), {add_one}, true},
    });
    expect_kvs(c.arch_kvs, {
        u32("gemma2.context_length", 8192),
        u32("gemma2.embedding_length", 64),
        u32("gemma2.block_count", 1),
        u32("gemma2.feed_forward_length", 96),
        u32("gemma2.attention.head_count", 4),
        u32("gemma2.attention.head_count_kv", 2),
        f32("gemma2.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("gemma2.attention.key_length", 16),
        u32("gemma2.attention.value_length", 16),
        f32("gemma2.attn_logit_softcapping", 50.0f),
        f32("gemma2.final_logit_softcapping", 30.0f),
        u32("gemma2.attention.sliding_window", 4096),
    });
    EXPECT_EQ(c.file_type_pos, 9u);
}

// Gemma3ForConditionalGeneration: text part only (vision tower and projector dropped), "language_model." removed,
// token_embd cut to the tokenizer's vocab, q/k norms shifted, gemma3 keys re-set in place.
TEST(GgufConversion, Gemma3MultimodalCheckpointConvertsTheTextPart) {
    const auto cfg = parse(R"({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "vision_config": {"hidden_size": 32, "model_type": "siglip_vision_model"},
        "text_config": {"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 96,
          "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
          "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
          "sliding_window": 512, "max_position_embeddings": 131072, "final_logit_softcapping": null,
          "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "vocab_size": 300}})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg,
        {t("language_model.model.embed_tokens.weight", {300, 64}),
         t("language_model.model.layers.0.self_attn.q_norm.weight", {16}),
         t("language_model.model.layers.0.self_attn.q_proj.weight", {64, 64}),
         t("multi_modal_projector.mm_input_projection_weight", {32, 64}),
         t("vision_tower.vision_model.embeddings.patch_embedding.weight", {32, 3, 14, 14})},
        262);
    expect_tensors(c, {
        {"token_embd.weight", {262, 64}, {{"language_model.model.embed_tokens.weight", 0, 262}}},
        {"blk.0.attn_q_norm.weight", {16}, src({"language_model.model.layers.0.self_attn.q_norm.weight"}), {add_one}, true},
        {"blk.0.attn_q.weight", {64, 64}, src({"language_model.model.layers.0.self_attn.q_proj.weight"})},
    });
    EXPECT_EQ(c.n_vocab_embed, 262);
    EXPECT_EQ(c.dropped, (std::vector<std::string>{"multi_modal_projector.mm_input_projection_weight",
                                                   "vision_tower.vision_model.embeddings.patch_embedding.weight"}));
    expect_kvs(c.arch_kvs, {
        u32("gemma3.block_count", 1),
        u32("gemma3.context_length", 131072),
        u32("gemma3.embedding_length", 64),
        u32("gemma3.feed_forward_length", 96),
        u32("gemma3.attention.head_count", 4),
        u32("gemma3.attention.head_count_kv", 2),
        str("gemma3.rope.scaling.type", "linear"),
        f32("gemma3.rope.scaling.factor", 8.0f),
        f32("gemma3.rope.freq_base", 1000000.0f),
        f32("gemma3.rope.freq_base_swa", 10000.0f),
        f32("gemma3.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("gemma3.attention.key_length", 16),
        u32("gemma3.attention.value_length", 16),
        u32("gemma3.attention.sliding_window", 512),
    });
    EXPECT_EQ(c.file_type_pos, 13u);

    const Error e = capture([&] {
        (void)sf::model::plan_gguf_conversion(cfg, {t("language_model.model.embed_tokens.weight", {300, 64})});
    });
    EXPECT_EQ(e.tensor(), "language_model.model.embed_tokens.weight");
}

// transformers >= 4.52 layout of the same model: "model.language_model.*", "model.vision_tower.*", lm_head kept.
TEST(GgufConversion, Gemma3NewerMultimodalLayout) {
    const auto cfg = parse(R"({"architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": {"num_hidden_layers": 1, "sliding_window": 512}})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg,
        {t("lm_head.weight", {300, 64}), t("model.language_model.embed_tokens.weight", {300, 64}),
         t("model.language_model.norm.weight", {64}),
         t("model.multi_modal_projector.mm_soft_emb_norm.weight", {32}),
         t("model.vision_tower.vision_model.post_layernorm.weight", {32})},
        300);
    expect_tensors(c, {
        {"output.weight", {300, 64}, src({"lm_head.weight"})},
        {"token_embd.weight", {300, 64}, src({"model.language_model.embed_tokens.weight"})},
        {"output_norm.weight", {64}, src({"model.language_model.norm.weight"}), {add_one}, true},
    });
    EXPECT_EQ(c.dropped, (std::vector<std::string>{"model.multi_modal_projector.mm_soft_emb_norm.weight",
                                                   "model.vision_tower.vision_model.post_layernorm.weight"}));
}

// conversion/mistral3.py: Mistral3ForConditionalGeneration's text model converted by LlamaModel under arch
// "mistral3" (Q/K un-permuted, vocab_size and rope.dimension_count after file_type); the Pixtral tower and the
// projector are filtered ("vision_" / "projector." in TextModel.filter_tensors), "language_model." is removed.
TEST(GgufConversion, Mistral3TextOfTheVisionCheckpoint) {
    const auto cfg = parse(R"({"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
        "vision_config": {"hidden_size": 32, "model_type": "pixtral"},
        "text_config": {"model_type": "mistral", "hidden_size": 64, "intermediate_size": 96, "head_dim": 16,
          "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-05,
          "rope_theta": 1000000000.0, "max_position_embeddings": 131072, "sliding_window": null,
          "vocab_size": 300}})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg,
        {t("language_model.model.layers.0.self_attn.q_proj.weight", {64, 64}),
         t("vision_tower.patch_conv.weight", {32, 3, 14, 14}),
         t("language_model.model.norm.weight", {64}),
         t("language_model.model.layers.0.self_attn.k_proj.weight", {32, 64}),
         t("multi_modal_projector.linear_1.weight", {64, 32}),
         t("language_model.lm_head.weight", {300, 64}),
         t("language_model.model.embed_tokens.weight", {300, 64})});
    EXPECT_EQ(c.arch, "mistral3");
    expect_tensors(c, {
        {"output.weight", {300, 64}, src({"language_model.lm_head.weight"})},
        {"token_embd.weight", {300, 64}, src({"language_model.model.embed_tokens.weight"})},
        {"blk.0.attn_k.weight", {32, 64}, src({"language_model.model.layers.0.self_attn.k_proj.weight"}), {permute(2)}},
        {"blk.0.attn_q.weight", {64, 64}, src({"language_model.model.layers.0.self_attn.q_proj.weight"}), {permute(4)}},
        {"output_norm.weight", {64}, src({"language_model.model.norm.weight"}), {}, true},
    });
    EXPECT_EQ(c.dropped, (std::vector<std::string>{"multi_modal_projector.linear_1.weight",
                                                   "vision_tower.patch_conv.weight"}));
    expect_kvs(c.arch_kvs, {
        u32("mistral3.block_count", 1),
        u32("mistral3.context_length", 131072),
        u32("mistral3.embedding_length", 64),
        u32("mistral3.feed_forward_length", 96),
        u32("mistral3.attention.head_count", 4),
        u32("mistral3.attention.head_count_kv", 2),
        f32("mistral3.rope.freq_base", 1e9f),
        f32("mistral3.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("mistral3.attention.key_length", 16),
        u32("mistral3.attention.value_length", 16),
        u32("mistral3.vocab_size", 300),
        u32("mistral3.rope.dimension_count", 16),
    });
    EXPECT_EQ(c.file_type_pos, 10u);

    // transformers >= 4.52 module names in a checkpoint: same GGUF names
    const GgufConversion n = sf::model::plan_gguf_conversion(
        cfg, {t("lm_head.weight", {300, 64}), t("model.language_model.layers.0.self_attn.q_proj.weight", {64, 64}),
              t("model.vision_tower.ln_pre.weight", {32})});
    expect_tensors(n, {
        {"output.weight", {300, 64}, src({"lm_head.weight"})},
        {"blk.0.attn_q.weight", {64, 64}, src({"model.language_model.layers.0.self_attn.q_proj.weight"}), {permute(4)}},
    });
}

// Mistral3Model.Ministral3Model.set_gguf_parameters: model_type "ministral3" must have yarn rope_parameters; the
// base yarn keys, LlamaModel's two keys, then yarn_log_multiplier = mscale_all_dim and attention.temperature_scale
// = llama_4_scaling_beta (both float32).
TEST(GgufConversion, Ministral3WritesYarnAndTemperatureScale) {
    const std::string text = R"("model_type": "ministral3", "hidden_size": 64, "intermediate_size": 96,
        "head_dim": 16, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-05, "max_position_embeddings": 262144, "vocab_size": 300,
        "rope_parameters": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 16.0, "llama_4_scaling_beta": 0.1,
          "mscale": 1.0, "mscale_all_dim": 1.0, "original_max_position_embeddings": 16384,
          "rope_theta": 1000000.0, "rope_type": "yarn", "type": "yarn"})";
    for (const std::string& config :
         {R"({"architectures": ["Ministral3ForCausalLM"], )" + text + "}",
          R"({"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3", "text_config": {)" +
              text + "}}"}) {
        SCOPED_TRACE(config.substr(0, 60));
        const GgufConversion c = sf::model::plan_gguf_conversion(parse(config), {});
        EXPECT_EQ(c.arch, "mistral3");
        expect_kvs(c.arch_kvs, {
            u32("mistral3.block_count", 2),
            u32("mistral3.context_length", 262144),
            u32("mistral3.embedding_length", 64),
            u32("mistral3.feed_forward_length", 96),
            u32("mistral3.attention.head_count", 4),
            u32("mistral3.attention.head_count_kv", 2),
            str("mistral3.rope.scaling.type", "yarn"),
            f32("mistral3.rope.scaling.factor", 16.0f),
            u32("mistral3.rope.scaling.original_context_length", 16384),
            f32("mistral3.rope.scaling.yarn_beta_fast", 32.0f),
            f32("mistral3.rope.scaling.yarn_beta_slow", 1.0f),
            f32("mistral3.rope.freq_base", 1e6f),
            f32("mistral3.attention.layer_norm_rms_epsilon", 1e-05f),
            u32("mistral3.attention.key_length", 16),
            u32("mistral3.attention.value_length", 16),
            u32("mistral3.vocab_size", 300),
            u32("mistral3.rope.dimension_count", 16),
            f32("mistral3.rope.scaling.yarn_log_multiplier", 1.0f),
            f32("mistral3.attention.temperature_scale", 0.1f),
        });
        EXPECT_EQ(c.file_type_pos, 15u);
    }
    // the converter's assertions and KeyErrors: bad input naming config.json
    for (const char* bad : {R"("rope_theta": 1e6)",
                            R"("rope_parameters": {"rope_type": "linear", "factor": 2.0})",
                            R"("rope_parameters": {"rope_type": "yarn", "factor": 2.0,
                                "original_max_position_embeddings": 16, "llama_4_scaling_beta": 0.1})"}) {
        SCOPED_TRACE(bad);
        const auto cfg = parse(std::string(R"({"architectures": ["Ministral3ForCausalLM"], "model_type": "ministral3",
            "num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 300, )") + bad + "}");
        const Error e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {}); });
        EXPECT_EQ(e.kind(), ErrorKind::BadInput) << e.what();
        EXPECT_EQ(e.file(), "config.json");
    }
}

// conversion/mistral3.py converts model_type "mistral4" as DeepSeek-V2 (arch "mistral4"): refused, exit 4.
TEST(GgufConversion, Mistral3RefusesMistral4) {
    const auto cfg = parse(R"({"architectures": ["Mistral3ForConditionalGeneration"],
        "text_config": {"model_type": "mistral4", "num_hidden_layers": 1}})");
    const Error e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {}); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("mistral4"), std::string::npos) << e.what();
}

// conversion/deepseek.py converts DeepSeek-V3.2 as arch "deepseek32" with its DSA indexer tensors: refused, exit 4,
// naming the indexer tensors.
TEST(GgufConversion, DeepSeek2RefusesDeepSeekV32) {
    const auto cfg = parse(R"({"architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32",
        "num_hidden_layers": 1})");
    const Error e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {}); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_EQ(e.file(), "config.json");
    const std::string what = e.what();
    EXPECT_NE(what.find("DeepSeek-V3.2"), std::string::npos) << what;
    EXPECT_NE(what.find("indexer"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
}

TEST(GgufConversion, Gemma3DefaultsWhenTheConfigIsSparse) {
    const auto cfg = parse(R"({"architectures": ["Gemma3ForCausalLM"], "num_hidden_layers": 2,
        "hidden_size": 64, "sliding_window": 1024})");
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, {}, 10);
    expect_kvs(c.arch_kvs, {
        u32("gemma3.block_count", 2),
        u32("gemma3.embedding_length", 64),
        u32("gemma3.context_length", 131072),
        u32("gemma3.attention.head_count", 8),
        f32("gemma3.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("gemma3.attention.key_length", 256),
        u32("gemma3.attention.value_length", 256),
        f32("gemma3.rope.freq_base", 1000000.0f),
        u32("gemma3.attention.sliding_window", 1024),
        u32("gemma3.attention.head_count_kv", 4),
    });
    EXPECT_EQ(c.file_type_pos, 2u);
}

// Phi-3: fused qkv and gate_up stay fused; LongRoPE factors generated first; attn_factor set before general.*.
TEST(GgufConversion, Phi3KeepsFusedTensorsAndWritesLongRope) {
    const auto cfg = parse(R"({"architectures": ["Phi3ForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4, "num_key_value_heads": 4,
        "max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0, "sliding_window": 262144, "vocab_size": 100,
        "rope_scaling": {"type": "longrope", "long_factor": [1, 2, 3, 4, 5, 6, 7, 8.5],
                         "short_factor": [1, 1, 1, 1, 1, 1, 1, 1.25]}})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("model.layers.0.self_attn.qkv_proj.weight", {192, 64}), t("model.layers.0.mlp.gate_up_proj.weight", {192, 64}),
              t("model.layers.0.mlp.down_proj.weight", {64, 96})});
    expect_tensors(c, {
        {"rope_factors_long.weight", {8}, {}, {}, true},
        {"rope_factors_short.weight", {8}, {}, {}, true},
        {"blk.0.ffn_down.weight", {64, 96}, src({"model.layers.0.mlp.down_proj.weight"})},
        {"blk.0.ffn_up.weight", {192, 64}, src({"model.layers.0.mlp.gate_up_proj.weight"})},
        {"blk.0.attn_qkv.weight", {192, 64}, src({"model.layers.0.self_attn.qkv_proj.weight"})},
    });
    EXPECT_EQ(c.tensors[0].generated, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8.5f}));
    EXPECT_EQ(c.tensors[1].generated, (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1.25f}));
    // scale = 131072 / 4096 = 32; sqrt(1 + ln 32 / ln 4096) = sqrt(1 + 5/12) = sqrt(17/12)
    expect_kvs(c.early_kvs, {f32("phi3.rope.scaling.attn_factor", static_cast<float>(std::sqrt(17.0 / 12.0)))});
    expect_kvs(c.arch_kvs, {
        u32("phi3.context_length", 131072),
        u32("phi3.rope.scaling.original_context_length", 4096),
        u32("phi3.embedding_length", 64),
        u32("phi3.feed_forward_length", 96),
        u32("phi3.block_count", 1),
        u32("phi3.attention.head_count", 4),
        u32("phi3.attention.head_count_kv", 4),
        f32("phi3.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("phi3.rope.dimension_count", 16),
        f32("phi3.rope.freq_base", 10000.0f),
        u32("phi3.attention.sliding_window", 262144),
    });
    EXPECT_EQ(c.file_type_pos, 10u);
}

TEST(GgufConversion, RefusesTwoTensorsThatBecomeTheSameName) {
    const auto cfg = parse(R"({"architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": {"num_hidden_layers": 1}})");
    const Error e = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            cfg, {t("model.norm.weight", {4}, "a.safetensors"), t("language_model.model.norm.weight", {4}, "b.safetensors")}, 10);
    });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), "language_model.model.norm.weight");
    EXPECT_EQ(e.file(), "b.safetensors");
}

// ---------------------------------------------------------------------------------------------- output types

TEST(GgufConversion, AutoOuttypeFollowsTheFirstMatrixThatIsBf16OrF16) {
    const auto cfg = parse(R"({"architectures": ["Qwen2ForCausalLM"], "num_hidden_layers": 1})");
    auto plan = [&](std::vector<HfTensor> in) { return sf::model::plan_gguf_conversion(cfg, in).auto_ftype; };
    // "a" < "b" by name: f32 matrix skipped, then the bf16 1-D skipped, then f16 matrix decides
    EXPECT_EQ(plan({t("model.layers.0.mlp.up_proj.weight", {4, 4}, "m.safetensors", DType::F16),
                    t("model.layers.0.input_layernorm.weight", {4}, "m.safetensors", DType::BF16),
                    t("model.embed_tokens.weight", {4, 4}, "m.safetensors", DType::F32)}),
              sf::quant::FType::F16);
    EXPECT_EQ(plan({t("model.embed_tokens.weight", {4, 4}, "m.safetensors", DType::F32)}), sf::quant::FType::F16);
    EXPECT_EQ(plan({t("model.embed_tokens.weight", {4, 4}, "m.safetensors", DType::BF16)}), sf::quant::FType::BF16);
}

TEST(GgufConversion, ConverterTensorTypeRules) {
    using sf::quant::FType;
    using sf::quant::GgmlType;
    sf::model::GgufTensorMap m;
    m.shape = {8, 64};
    EXPECT_EQ(sf::model::converter_tensor_type(m, FType::F16), GgmlType::F16);
    EXPECT_EQ(sf::model::converter_tensor_type(m, FType::BF16), GgmlType::BF16);
    EXPECT_EQ(sf::model::converter_tensor_type(m, FType::F32), GgmlType::F32);
    EXPECT_EQ(sf::model::converter_tensor_type(m, FType::Q8_0), GgmlType::Q8_0);
    m.shape = {8, 48};  // 48 % 32 != 0: QuantError -> F16
    EXPECT_EQ(sf::model::converter_tensor_type(m, FType::Q8_0), GgmlType::F16);
    m.force_f32 = true;
    EXPECT_EQ(sf::model::converter_tensor_type(m, FType::Q8_0), GgmlType::F32);
    m.force_f32 = false;
    EXPECT_EQ(capture([&] { (void)sf::model::converter_tensor_type(m, FType::Q4_K_M); }).kind(), ErrorKind::Unsupported);

    sf::model::OutType o{};
    ASSERT_TRUE(sf::model::parse_outtype("q8_0", o));
    EXPECT_EQ(sf::model::outtype_ftype(o, GgufConversion{}), FType::Q8_0);
    EXPECT_EQ(static_cast<std::uint32_t>(sf::model::outtype_ftype(o, GgufConversion{})), 7u);
    ASSERT_TRUE(sf::model::parse_outtype("bf16", o));
    EXPECT_EQ(static_cast<std::uint32_t>(sf::model::outtype_ftype(o, GgufConversion{})), 32u);
    ASSERT_TRUE(sf::model::parse_outtype("auto", o));
    GgufConversion c;
    c.auto_ftype = FType::BF16;
    EXPECT_EQ(sf::model::outtype_ftype(o, c), FType::BF16);
    EXPECT_FALSE(sf::model::parse_outtype("q4_k_m", o));
}

// ---------------------------------------------------------------------------------------------- metadata

TEST(GgufConversion, SizeLabelAsGgufPy) {
    GgufConversion c;
    c.tensors.push_back({"token_embd.weight", {}, {}, {135'000'000}, {}, false});
    EXPECT_EQ(sf::model::size_label(c), "135M");
    c.tensors[0].shape = {1'000'000};  // not > 1e6: thousands
    EXPECT_EQ(sf::model::size_label(c), "1000K");
    c.tensors[0].shape = {8'030'261'248};
    EXPECT_EQ(sf::model::size_label(c), "8.0B");
    c.tensors[0].shape = {1000, 1000};
    c.tensors.push_back({"blk.0.ffn_up_exps.weight", {}, {}, {8, 1000, 1000}, {}, false});
    EXPECT_EQ(sf::model::size_label(c), "8x2.0M");  // shared 1M + one expert 1M
}

TEST(GgufConversion, ModelKvsInConverterOrder) {
    GgufConversion c;
    c.arch = "phi3";
    c.early_kvs = {f32("phi3.rope.scaling.attn_factor", 1.5f)};
    c.arch_kvs = {u32("phi3.context_length", 4096), u32("phi3.attention.sliding_window", 0)};
    c.file_type_pos = 1;
    sf::model::GeneralMeta meta;
    meta.name = "Phi 3 Mini";
    meta.size_label = "3.8B";
    expect_kvs(sf::model::gguf_model_kvs(c, meta, sf::quant::FType::BF16), {
        str("general.architecture", "phi3"),
        f32("phi3.rope.scaling.attn_factor", 1.5f),
        str("general.type", "model"),
        str("general.name", "Phi 3 Mini"),
        str("general.size_label", "3.8B"),
        u32("phi3.context_length", 4096),
        u32("general.file_type", 32),
        u32("phi3.attention.sliding_window", 0),
        u32("general.quantization_version", 2),
    });
}

// ---------------------------------------------------------------------------------------------- qwen35

namespace {

// Qwen3.5 text inside the vision class (config.json of Qwen/Qwen3.5-* with text_config), 2 layers: one gated
// delta-net layer, one full-attention layer, one MTP layer. Linear attention: 2 K heads of 4, 4 V heads of 3
// (V per K r = 2), conv kernel 4, so key_dim 8, value_dim 12, conv_dim 28. hidden 16.
const char* qwen35_vl_config = R"({"architectures": ["Qwen3_5ForConditionalGeneration"], "model_type": "qwen3_5",
    "image_token_id": 9, "tie_word_embeddings": false, "vision_config": {"depth": 1},
    "text_config": {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "head_dim": 8, "rms_norm_eps": 1e-06, "max_position_embeddings": 4096,
        "layer_types": ["linear_attention", "full_attention"], "full_attention_interval": 2,
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 4, "linear_value_head_dim": 3,
        "linear_num_key_heads": 2, "linear_num_value_heads": 4, "mtp_num_hidden_layers": 1,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000000, "partial_rotary_factor": 0.25,
                            "mrope_section": [1, 0, 0], "mrope_interleaved": true},
        "vocab_size": 32, "model_type": "qwen3_5_text"}})";

std::vector<HfTensor> qwen35_vl_tensors() {
    return {
        t("lm_head.weight", {32, 16}),
        t("model.language_model.embed_tokens.weight", {32, 16}),
        t("model.language_model.layers.0.input_layernorm.weight", {16}),
        t("model.language_model.layers.0.linear_attn.A_log", {4}),
        t("model.language_model.layers.0.linear_attn.conv1d.weight", {28, 1, 4}),
        t("model.language_model.layers.0.linear_attn.dt_bias", {4}),
        t("model.language_model.layers.0.linear_attn.in_proj_a.weight", {4, 16}),
        t("model.language_model.layers.0.linear_attn.in_proj_qkv.weight", {28, 16}),
        t("model.language_model.layers.0.linear_attn.in_proj_z.weight", {12, 16}),
        t("model.language_model.layers.0.linear_attn.norm.weight", {3}),
        t("model.language_model.layers.0.linear_attn.out_proj.weight", {16, 12}),
        t("model.language_model.layers.0.post_attention_layernorm.weight", {16}),
        t("model.language_model.layers.1.self_attn.q_proj.weight", {32, 16}),
        t("model.language_model.layers.1.self_attn.q_norm.weight", {8}),
        t("model.language_model.norm.weight", {16}),
        t("model.visual.blocks.0.attn.qkv.weight", {48, 16}),
        t("mtp.fc.weight", {16, 32}),
        t("mtp.layers.0.self_attn.k_norm.weight", {8}),
        t("mtp.norm.weight", {16}),
        t("mtp.pre_fc_norm_hidden.weight", {16}),
    };
}

Transform tile_rows(std::int64_t n_k, std::int64_t head, std::int64_t skip) {
    return {TransformKind::TileVHeadRows, n_k, head, skip};
}

}  // namespace

// conversion/qwen.py: Qwen3_5TextModel (_LinearAttentionVReorderBase -> Qwen3NextModel -> _QwenMtpMixin) and
// gguf-py's qwen35 name map; tensor types as prepare_tensors (1-D, *_norm.weight, ssm_conv1d, no ".weight" -> F32).
TEST(GgufConversion, Qwen35MapsLinearAttentionTilesVHeadsAndRenumbersMtp) {
    const GgufConversion c = sf::model::plan_gguf_conversion(parse(qwen35_vl_config), qwen35_vl_tensors());
    EXPECT_EQ(c.arch, "qwen35");
    EXPECT_EQ(c.block_count, 3);  // 2 layers + 1 MTP layer
    const Transform neg_exp{TransformKind::NegExp, 0};
    const std::string L = "model.language_model.layers.";
    auto one = [](const std::string& n) { return std::vector<SourceSlice>{{n}}; };
    expect_tensors(c, {
        {"output.weight", {32, 16}, src({"lm_head.weight"})},
        {"token_embd.weight", {32, 16}, src({"model.language_model.embed_tokens.weight"})},
        {"blk.0.attn_norm.weight", {16}, one(L + "0.input_layernorm.weight"), {add_one}, true},
        // 4 V heads grouped by K head [k0: v0 v1 | k1: v0 v1] -> tiled, then -exp
        {"blk.0.ssm_a", {4}, one(L + "0.linear_attn.A_log"), {tile_rows(2, 1, 0), neg_exp}, true},
        // squeezed [28, 1, 4] -> [28, 4]; the 12 V channels after q and k (2 x 2 x 4 = 16) tile in heads of 3
        {"blk.0.ssm_conv1d.weight", {28, 4}, one(L + "0.linear_attn.conv1d.weight"), {tile_rows(2, 3, 16)}, true},
        {"blk.0.ssm_dt.bias", {4}, one(L + "0.linear_attn.dt_bias"), {tile_rows(2, 1, 0)}, true},
        {"blk.0.ssm_alpha.weight", {4, 16}, one(L + "0.linear_attn.in_proj_a.weight"), {tile_rows(2, 1, 0)}},
        {"blk.0.attn_qkv.weight", {28, 16}, one(L + "0.linear_attn.in_proj_qkv.weight"), {tile_rows(2, 3, 16)}},
        {"blk.0.attn_gate.weight", {12, 16}, one(L + "0.linear_attn.in_proj_z.weight"), {tile_rows(2, 3, 0)}},
        // the gated norm is used as w: no +1; one head's width, shared by all heads: no tiling
        {"blk.0.ssm_norm.weight", {3}, one(L + "0.linear_attn.norm.weight"), {}, true},
        {"blk.0.ssm_out.weight", {16, 12}, one(L + "0.linear_attn.out_proj.weight"),
         {{TransformKind::TileVHeadColumns, 2, 3, 0}}},
        {"blk.0.post_attention_norm.weight", {16}, one(L + "0.post_attention_layernorm.weight"), {add_one}, true},
        {"blk.1.attn_q_norm.weight", {8}, one(L + "1.self_attn.q_norm.weight"), {add_one}, true},
        {"blk.1.attn_q.weight", {32, 16}, one(L + "1.self_attn.q_proj.weight")},  // query | gate: no permutation,
        {"output_norm.weight", {16}, one("model.language_model.norm.weight"), {add_one}, true},
        {"blk.2.nextn.eh_proj.weight", {16, 32}, src({"mtp.fc.weight"})},
        {"blk.2.attn_k_norm.weight", {8}, src({"mtp.layers.0.self_attn.k_norm.weight"}), {add_one}, true},
        {"blk.2.nextn.shared_head_norm.weight", {16}, src({"mtp.norm.weight"}), {add_one}, true},
        {"blk.2.nextn.hnorm.weight", {16}, src({"mtp.pre_fc_norm_hidden.weight"}), {add_one}, true},
    });
    ASSERT_EQ(c.dropped.size(), 1u);
    EXPECT_EQ(c.dropped[0], "model.visual.blocks.0.attn.qkv.weight");

    // Qwen3NextModel.set_gguf_parameters after TextModel's (file type after value_length) and the MTP count;
    // dimension_sections padded to 4 INT32s; recurrent_layers one BOOL per block, the MTP block full attention.
    std::vector<GgufKV> want = {
        u32("qwen35.block_count", 3),
        u32("qwen35.context_length", 4096),
        u32("qwen35.embedding_length", 16),
        u32("qwen35.feed_forward_length", 32),
        u32("qwen35.attention.head_count", 2),
        u32("qwen35.attention.head_count_kv", 1),
        {"qwen35.rope.dimension_sections", GgufValue::arr_i32({1, 0, 0, 0})},
        f32("qwen35.rope.freq_base", 10000000.0f),
        f32("qwen35.attention.layer_norm_rms_epsilon", 1e-06f),
        u32("qwen35.attention.key_length", 8),
        u32("qwen35.attention.value_length", 8),
        u32("qwen35.nextn_predict_layers", 1),
        u32("qwen35.ssm.conv_kernel", 4),
        u32("qwen35.ssm.state_size", 4),
        u32("qwen35.ssm.group_count", 2),
        u32("qwen35.ssm.time_step_rank", 4),
        u32("qwen35.ssm.inner_size", 12),
        {"qwen35.attention.recurrent_layers", GgufValue::arr_bool({true, false, false})},
        u32("qwen35.full_attention_interval", 2),
        u32("qwen35.rope.dimension_count", 2),
    };
    expect_kvs(c.arch_kvs, want);
    EXPECT_EQ(c.file_type_pos, 11u);
}

// Qwen3_5ForCausalLM as transformers saves it: mtp_num_hidden_layers 1 but no MTP tensors, and no layer_types or
// mrope_section. The decoder alone (the converter's --no-mtp output; its default would declare an MTP block that
// llama.cpp cannot load), the _Qwen35MRopeMixin default sections last, rope dims from the 0.25 default factor;
// K heads = V heads: no tiling.
TEST(GgufConversion, Qwen35WithoutMtpTensorsOrSectionsUsesTheConverterDefaults) {
    const auto cfg = parse(R"({"architectures": ["Qwen3_5ForCausalLM"], "num_hidden_layers": 1, "hidden_size": 16,
        "mtp_num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 1000000.0, "linear_conv_kernel_dim": 4,
        "linear_key_head_dim": 4, "linear_value_head_dim": 4, "linear_num_key_heads": 2,
        "linear_num_value_heads": 2})");
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("model.layers.0.linear_attn.in_proj_z.weight", {8, 16}), t("model.layers.0.linear_attn.A_log", {2})});
    EXPECT_EQ(c.block_count, 1);
    expect_tensors(c, {
        {"blk.0.ssm_a", {2}, src({"model.layers.0.linear_attn.A_log"}), {{TransformKind::NegExp, 0}}, true},
        {"blk.0.attn_gate.weight", {8, 16}, src({"model.layers.0.linear_attn.in_proj_z.weight"})},
    });
    expect_kvs(c.arch_kvs, {
        u32("qwen35.block_count", 1),
        u32("qwen35.embedding_length", 16),
        u32("qwen35.attention.head_count", 2),
        u32("qwen35.attention.head_count_kv", 1),
        f32("qwen35.rope.freq_base", 1000000.0f),
        u32("qwen35.ssm.conv_kernel", 4),
        u32("qwen35.ssm.state_size", 4),
        u32("qwen35.ssm.group_count", 2),
        u32("qwen35.ssm.time_step_rank", 2),
        u32("qwen35.ssm.inner_size", 8),
        u32("qwen35.full_attention_interval", 4),
        u32("qwen35.rope.dimension_count", 2),  // int(16 / 2 * 0.25)
        {"qwen35.rope.dimension_sections", GgufValue::arr_i32({11, 11, 10, 0})},
    });
}

// Qwen3_5MoeTextModel: the same linear attention, then Qwen2MoeModel's fused experts (down_proj gets ".weight",
// gate_up_proj splits into gate and up halves by rows), router and shared-expert gate F32; expert KVs.
TEST(GgufConversion, Qwen35MoeSplitsFusedExpertsAndMapsTheSharedExpert) {
    const auto cfg = parse(R"({"architectures": ["Qwen3_5MoeForCausalLM"], "num_hidden_layers": 1, "hidden_size": 16,
        "num_attention_heads": 2, "num_key_value_heads": 1, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 4,
        "linear_value_head_dim": 4, "linear_num_key_heads": 1, "linear_num_value_heads": 2, "num_experts": 4,
        "num_experts_per_tok": 2, "moe_intermediate_size": 8, "shared_expert_intermediate_size": 32})");
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, {
        t("model.layers.0.linear_attn.in_proj_z.weight", {8, 16}),
        t("model.layers.0.mlp.experts.down_proj", {4, 16, 8}),
        t("model.layers.0.mlp.experts.gate_up_proj", {4, 16, 16}),
        t("model.layers.0.mlp.gate.weight", {4, 16}),
        t("model.layers.0.mlp.shared_expert.up_proj.weight", {32, 16}),
        t("model.layers.0.mlp.shared_expert_gate.weight", {1, 16}),
    });
    EXPECT_EQ(c.arch, "qwen35moe");
    const char* gu = "model.layers.0.mlp.experts.gate_up_proj";
    expect_tensors(c, {
        {"blk.0.attn_gate.weight", {8, 16}, src({"model.layers.0.linear_attn.in_proj_z.weight"}),
         {tile_rows(1, 4, 0)}},
        {"blk.0.ffn_down_exps.weight", {4, 16, 8}, src({"model.layers.0.mlp.experts.down_proj"})},
        {"blk.0.ffn_gate_exps.weight", {4, 8, 16}, {{gu, 0, 8}}},
        {"blk.0.ffn_up_exps.weight", {4, 8, 16}, {{gu, 8, 16}}},
        {"blk.0.ffn_gate_inp.weight", {4, 16}, src({"model.layers.0.mlp.gate.weight"}), {}, true},
        {"blk.0.ffn_up_shexp.weight", {32, 16}, src({"model.layers.0.mlp.shared_expert.up_proj.weight"})},
        {"blk.0.ffn_gate_inp_shexp.weight", {1, 16}, src({"model.layers.0.mlp.shared_expert_gate.weight"}), {}, true},
    });
    auto find = [&](const std::string& key) -> const GgufKV* {
        for (const auto& kv : c.arch_kvs)
            if (kv.key == key) return &kv;
        return nullptr;
    };
    for (auto [key, v] : {std::pair{"qwen35moe.expert_count", 4u}, std::pair{"qwen35moe.expert_used_count", 2u},
                          std::pair{"qwen35moe.expert_feed_forward_length", 8u},
                          std::pair{"qwen35moe.expert_shared_feed_forward_length", 32u}}) {
        const GgufKV* kv = find(key);
        ASSERT_NE(kv, nullptr) << key;
        EXPECT_TRUE(kv->value == GgufValue::u32(v)) << key;
    }
}

TEST(GgufConversion, Qwen35RefusesMismatchedLayerTypesAndVHeads) {
    const Error e1 = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            parse(R"({"architectures": ["Qwen3_5ForCausalLM"], "num_hidden_layers": 2, "linear_conv_kernel_dim": 4,
                "linear_key_head_dim": 4, "linear_value_head_dim": 4, "linear_num_key_heads": 2,
                "linear_num_value_heads": 2, "layer_types": ["linear_attention"]})"),
            {});
    });
    EXPECT_EQ(e1.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e1.what()).find("layer_types has 1 entries"), std::string::npos) << e1.what();

    // 5 rows where 2 K heads x (4 / 2) V heads x 2 = 8 are expected
    const Error e2 = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            parse(R"({"architectures": ["Qwen3_5ForCausalLM"], "num_hidden_layers": 1, "linear_key_head_dim": 2,
                "linear_value_head_dim": 2, "linear_num_key_heads": 2, "linear_num_value_heads": 4})"),
            {t("model.layers.0.linear_attn.in_proj_z.weight", {5, 16})});
    });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e2.tensor(), "model.layers.0.linear_attn.in_proj_z.weight");
}

// Counts and sizes read from the checkpoint are bounded: a huge mtp_num_hidden_layers or MTP layer number, a
// partial_rotary_factor outside (0, 1] or more than 4 mrope sections is a one-line BadInput, not an overflow.
TEST(GgufConversion, Qwen35RefusesOutOfRangeMtpAndRopeValues) {
    auto with = [](std::string from, std::string to) {
        std::string c = qwen35_vl_config;
        const auto at = c.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return c.replace(at, from.size(), to);
    };
    const Error e1 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("\"mtp_num_hidden_layers\": 1", "\"mtp_num_hidden_layers\": 1000000")),
                                              qwen35_vl_tensors());
    });
    EXPECT_EQ(e1.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e1.what()).find("mtp_num_hidden_layers"), std::string::npos) << e1.what();

    auto ts = qwen35_vl_tensors();
    const std::string huge = "mtp.layers.99999999999999999999.self_attn.q_norm.weight";
    ts.push_back(t(huge, {8}));
    const Error e2 = capture([&] { (void)sf::model::plan_gguf_conversion(parse(qwen35_vl_config), ts); });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e2.tensor(), huge);

    const Error e3 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("\"partial_rotary_factor\": 0.25", "\"partial_rotary_factor\": 0")),
                                              qwen35_vl_tensors());
    });
    EXPECT_EQ(e3.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e3.what()).find("partial_rotary_factor"), std::string::npos) << e3.what();

    const Error e4 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("[1, 0, 0]", "[1, 0, 0, 0, 2]")), qwen35_vl_tensors());
    });
    EXPECT_EQ(e4.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e4.what()).find("mrope_section"), std::string::npos) << e4.what();
}

// GLM-4.5: the dense first layer, the router bias renamed and mapped, the shared experts, the experts of the MoE and
// MTP layers stacked, the MTP layer's own tensors; block_count counts the MTP layer, and the MoE keys follow.
const char* glm4moe_config = R"({"architectures": ["Glm4MoeForCausalLM"], "num_hidden_layers": 2, "hidden_size": 16,
    "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 32,
    "moe_intermediate_size": 8, "n_routed_experts": 2, "num_experts_per_tok": 1, "n_shared_experts": 1,
    "first_k_dense_replace": 1, "routed_scaling_factor": 2.5, "norm_topk_prob": true, "n_group": 1, "topk_group": 1,
    "num_nextn_predict_layers": 1, "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-05, "rope_theta": 1000000})";

std::vector<HfTensor> glm4moe_tensors() {
    std::vector<HfTensor> ts = {
        t("model.embed_tokens.weight", {64, 16}),
        t("model.layers.0.mlp.down_proj.weight", {16, 32}),
        t("model.layers.0.post_attention_layernorm.weight", {16}),
        t("model.layers.0.self_attn.q_norm.weight", {8}),
        t("model.layers.0.self_attn.q_proj.bias", {16}),
        t("model.layers.1.mlp.gate.e_score_correction_bias", {2}, "model.safetensors", DType::F32),
        t("model.layers.1.mlp.gate.weight", {2, 16}),
        t("model.layers.1.mlp.shared_experts.up_proj.weight", {8, 16}),
    };
    for (int l : {1, 2})
        for (int e = 0; e < 2; ++e)
            for (const char* w : {"down_proj", "gate_proj", "up_proj"})
                ts.push_back(t("model.layers." + std::to_string(l) + ".mlp.experts." + std::to_string(e) + "." + w +
                                   ".weight",
                               std::string(w) == "down_proj" ? Shape{16, 8} : Shape{8, 16}));
    for (const char* n : {"eh_proj", "embed_tokens", "enorm", "shared_head.head", "shared_head.norm"}) {
        const std::string name = std::string("model.layers.2.") + n + ".weight";
        const std::string_view v = n;
        ts.push_back(t(name, v == "eh_proj" ? Shape{16, 32} : v.ends_with("norm") ? Shape{16} : Shape{64, 16}));
    }
    return ts;
}

TEST(GgufConversion, Glm4MoeMapsRouterBiasSharedExpertsAndKeepsTheMtpLayer) {
    const GgufConversion c = sf::model::plan_gguf_conversion(parse(glm4moe_config), glm4moe_tensors());
    EXPECT_EQ(c.arch, "glm4moe");
    EXPECT_EQ(c.block_count, 3);
    auto experts = [](int l, const char* w) {
        std::vector<SourceSlice> v;
        for (int e = 0; e < 2; ++e)
            v.push_back({"model.layers." + std::to_string(l) + ".mlp.experts." + std::to_string(e) + "." + w + ".weight"});
        return v;
    };
    expect_tensors(c, {
        {"token_embd.weight", {64, 16}, src({"model.embed_tokens.weight"})},
        {"blk.0.ffn_down.weight", {16, 32}, src({"model.layers.0.mlp.down_proj.weight"})},
        {"blk.0.post_attention_norm.weight", {16}, src({"model.layers.0.post_attention_layernorm.weight"}), {}, true},
        {"blk.0.attn_q_norm.weight", {8}, src({"model.layers.0.self_attn.q_norm.weight"}), {}, true},
        {"blk.0.attn_q.bias", {16}, src({"model.layers.0.self_attn.q_proj.bias"}), {}, true},
        // tensors visited in name order: a layer's experts (stacked at the last one) before its router
        {"blk.1.ffn_down_exps.weight", {2, 16, 8}, experts(1, "down_proj")},
        {"blk.1.ffn_gate_exps.weight", {2, 8, 16}, experts(1, "gate_proj")},
        {"blk.1.ffn_up_exps.weight", {2, 8, 16}, experts(1, "up_proj")},
        {"blk.1.exp_probs_b.bias", {2}, src({"model.layers.1.mlp.gate.e_score_correction_bias"}), {}, true},
        {"blk.1.ffn_gate_inp.weight", {2, 16}, src({"model.layers.1.mlp.gate.weight"}), {}, true},
        {"blk.1.ffn_up_shexp.weight", {8, 16}, src({"model.layers.1.mlp.shared_experts.up_proj.weight"})},
        {"blk.2.nextn.eh_proj.weight", {16, 32}, src({"model.layers.2.eh_proj.weight"})},
        {"blk.2.nextn.embed_tokens.weight", {64, 16}, src({"model.layers.2.embed_tokens.weight"})},
        {"blk.2.nextn.enorm.weight", {16}, src({"model.layers.2.enorm.weight"}), {}, true},
        {"blk.2.ffn_down_exps.weight", {2, 16, 8}, experts(2, "down_proj")},
        {"blk.2.ffn_gate_exps.weight", {2, 8, 16}, experts(2, "gate_proj")},
        {"blk.2.ffn_up_exps.weight", {2, 8, 16}, experts(2, "up_proj")},
        {"blk.2.nextn.shared_head_head.weight", {64, 16}, src({"model.layers.2.shared_head.head.weight"})},
        {"blk.2.nextn.shared_head_norm.weight", {16}, src({"model.layers.2.shared_head.norm.weight"}), {}, true},
    });
    const std::vector<GgufKV> want = {
        u32("glm4moe.block_count", 3), u32("glm4moe.embedding_length", 16), u32("glm4moe.feed_forward_length", 32),
        u32("glm4moe.attention.head_count", 2), u32("glm4moe.attention.head_count_kv", 1),
        f32("glm4moe.rope.freq_base", 1e6f), f32("glm4moe.attention.layer_norm_rms_epsilon", 1e-5f),
        u32("glm4moe.expert_count", 2), u32("glm4moe.expert_used_count", 1), u32("glm4moe.expert_group_count", 1),
        u32("glm4moe.expert_group_used_count", 1), u32("glm4moe.attention.key_length", 8),
        u32("glm4moe.attention.value_length", 8), u32("glm4moe.rope.dimension_count", 4),
        u32("glm4moe.expert_feed_forward_length", 8), u32("glm4moe.expert_shared_count", 1),
        u32("glm4moe.leading_dense_block_count", 1), u32("glm4moe.expert_gating_func", 2),
        f32("glm4moe.expert_weights_scale", 2.5f), {"glm4moe.expert_weights_norm", GgufValue::boolean(true)},
        u32("glm4moe.nextn_predict_layers", 1)};
    expect_kvs(c.arch_kvs, want);
    EXPECT_EQ(c.file_type_pos, 13u);  // after the base keys, before the model class's own
}

TEST(GgufConversion, Glm4MoeRefusesOutOfRangeLayersAndValues) {
    auto with = [](std::string from, std::string to) {
        std::string c = glm4moe_config;
        const auto at = c.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return c.replace(at, from.size(), to);
    };
    const Error e1 = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            parse(with("\"num_nextn_predict_layers\": 1", "\"num_nextn_predict_layers\": 100000")), glm4moe_tensors());
    });
    EXPECT_EQ(e1.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e1.what()).find("num_nextn_predict_layers"), std::string::npos) << e1.what();

    // without the MTP layer in the config, layer 2 is beyond block_count: the converter cannot map it
    const Error e2 = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            parse(with("\"num_nextn_predict_layers\": 1", "\"num_nextn_predict_layers\": 0")), glm4moe_tensors());
    });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e2.tensor()).find("model.layers.2."), std::string::npos) << e2.what();

    const Error e3 = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            parse(with("\"partial_rotary_factor\": 0.5", "\"partial_rotary_factor\": 1.5")), glm4moe_tensors());
    });
    EXPECT_EQ(e3.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e3.what()).find("partial_rotary_factor"), std::string::npos) << e3.what();

    const Error e4 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("\"n_routed_experts\": 2,", "")), glm4moe_tensors());
    });
    EXPECT_EQ(e4.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e4.what()).find("n_routed_experts"), std::string::npos) << e4.what();

    // partial_rotary_factor defaults to 0.5 without the key (Glm4MoeModel's default)
    const GgufConversion c =
        sf::model::plan_gguf_conversion(parse(with("\"partial_rotary_factor\": 0.5, ", "")), glm4moe_tensors());
    bool seen = false;
    for (const auto& kv : c.arch_kvs)
        if (kv.key == "glm4moe.rope.dimension_count") seen = kv.value == GgufValue::u32(4);
    EXPECT_TRUE(seen);
}

// conversion/qwen.py Qwen3NextModel: in_proj_qkvz, stored per K head as [q | k | v | z], becomes attn_qkv (every q,
// every k, every v) and attn_gate (every z) -- written here as row slices of the fused tensor; in_proj_ba -> ssm_ba
// as is; no V-head tiling; per-expert tensors stacked (Qwen2MoeModel), the MTP layer's too (block 1 of 1 + 1 MTP).
TEST(GgufConversion, Qwen3NextSplitsQkvzAndStacksPerExpertTensors) {
    const auto cfg = parse(R"({"architectures": ["Qwen3NextForCausalLM"], "num_hidden_layers": 1, "hidden_size": 16,
        "num_attention_heads": 2, "num_key_value_heads": 1, "rope_theta": 10000000, "partial_rotary_factor": 0.25,
        "linear_conv_kernel_dim": 4, "linear_key_head_dim": 2, "linear_value_head_dim": 3, "linear_num_key_heads": 2,
        "linear_num_value_heads": 4, "full_attention_interval": 4, "num_experts": 2, "num_experts_per_tok": 1,
        "moe_intermediate_size": 4, "shared_expert_intermediate_size": 8})");
    std::vector<HfTensor> ts = {
        t("model.layers.0.linear_attn.A_log", {4}),
        t("model.layers.0.linear_attn.conv1d.weight", {20, 1, 4}),
        t("model.layers.0.linear_attn.in_proj_ba.weight", {8, 16}),
        t("model.layers.0.linear_attn.in_proj_qkvz.weight", {32, 16}),
        t("model.layers.0.linear_attn.norm.weight", {3}),
        t("mtp.fc.weight", {16, 32}),
    };
    for (const char* p : {"model.layers.0.", "mtp.layers.0."})
        for (int e = 0; e < 2; ++e)
            for (const char* w : {"down_proj", "gate_proj", "up_proj"})
                ts.push_back(t(sf::core::cat(p, "mlp.experts.", e, ".", w, ".weight"),
                               std::string(w) == "down_proj" ? Shape{16, 4} : Shape{4, 16}));
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, ts);
    EXPECT_EQ(c.arch, "qwen3next");
    EXPECT_EQ(c.block_count, 2);
    const std::string qkvz = "model.layers.0.linear_attn.in_proj_qkvz.weight";
    // per K head 2 (q) + 2 (k) + 2 x 3 (v) + 2 x 3 (z) = 16 rows
    const std::vector<SourceSlice> qkv = {{qkvz, 0, 2}, {qkvz, 16, 18}, {qkvz, 2, 4}, {qkvz, 18, 20},
                                          {qkvz, 4, 10}, {qkvz, 20, 26}};
    const std::vector<SourceSlice> z = {{qkvz, 10, 16}, {qkvz, 26, 32}};
    auto experts = [](const char* p, const char* w) {
        return std::vector<SourceSlice>{{sf::core::cat(p, "mlp.experts.0.", w, ".weight")},
                                        {sf::core::cat(p, "mlp.experts.1.", w, ".weight")}};
    };
    const char* L = "model.layers.0.";
    const char* M = "mtp.layers.0.";
    expect_tensors(c, {
        {"blk.0.ssm_a", {4}, src({"model.layers.0.linear_attn.A_log"}), {{TransformKind::NegExp, 0}}, true},
        {"blk.0.ssm_conv1d.weight", {20, 4}, src({"model.layers.0.linear_attn.conv1d.weight"}), {}, true},
        {"blk.0.ssm_ba.weight", {8, 16}, src({"model.layers.0.linear_attn.in_proj_ba.weight"})},
        {"blk.0.attn_qkv.weight", {20, 16}, qkv},
        {"blk.0.attn_gate.weight", {12, 16}, z},
        {"blk.0.ssm_norm.weight", {3}, src({"model.layers.0.linear_attn.norm.weight"}), {}, true},  // gated: no +1
        {"blk.0.ffn_down_exps.weight", {2, 16, 4}, experts(L, "down_proj")},
        {"blk.0.ffn_gate_exps.weight", {2, 4, 16}, experts(L, "gate_proj")},
        {"blk.0.ffn_up_exps.weight", {2, 4, 16}, experts(L, "up_proj")},
        {"blk.1.nextn.eh_proj.weight", {16, 32}, src({"mtp.fc.weight"})},
        {"blk.1.ffn_down_exps.weight", {2, 16, 4}, experts(M, "down_proj")},
        {"blk.1.ffn_gate_exps.weight", {2, 4, 16}, experts(M, "gate_proj")},
        {"blk.1.ffn_up_exps.weight", {2, 4, 16}, experts(M, "up_proj")},
    });
    auto find = [&](const std::string& key) -> const GgufKV* {
        for (const auto& kv : c.arch_kvs)
            if (kv.key == key) return &kv;
        return nullptr;
    };
    for (auto [key, v] : {std::pair{"qwen3next.block_count", 2u}, std::pair{"qwen3next.expert_count", 2u},
                          std::pair{"qwen3next.expert_feed_forward_length", 4u},
                          std::pair{"qwen3next.expert_shared_feed_forward_length", 8u},
                          std::pair{"qwen3next.nextn_predict_layers", 1u}, std::pair{"qwen3next.ssm.group_count", 2u},
                          std::pair{"qwen3next.ssm.time_step_rank", 4u}, std::pair{"qwen3next.ssm.inner_size", 12u},
                          std::pair{"qwen3next.full_attention_interval", 4u},
                          std::pair{"qwen3next.rope.dimension_count", 2u}}) {  // int(16 / 2 * 0.25)
        const GgufKV* kv = find(key);
        ASSERT_NE(kv, nullptr) << key << "\n" << show(c.arch_kvs);
        EXPECT_TRUE(kv->value == GgufValue::u32(v)) << key;
    }
    // no layer_types: no recurrent_layers array (llama.cpp derives them from the interval); no mrope sections
    EXPECT_EQ(find("qwen3next.attention.recurrent_layers"), nullptr);
    EXPECT_EQ(find("qwen3next.rope.dimension_sections"), nullptr);
}

TEST(GgufConversion, Qwen3NextRefusesAFusedQkvzOfTheWrongSizeAndQwen35Names) {
    const auto cfg = parse(R"({"architectures": ["Qwen3NextForCausalLM"], "num_hidden_layers": 1, "hidden_size": 16,
        "linear_key_head_dim": 2, "linear_value_head_dim": 3, "linear_num_key_heads": 2, "linear_num_value_heads": 4})");
    const Error e1 = capture([&] {
        (void)sf::model::plan_gguf_conversion(cfg, {t("model.layers.0.linear_attn.in_proj_qkvz.weight", {30, 16})});
    });
    EXPECT_EQ(e1.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e1.tensor(), "model.layers.0.linear_attn.in_proj_qkvz.weight");
    EXPECT_NE(std::string(e1.what()).find("[q, k, v, z] per K head"), std::string::npos) << e1.what();
    // gguf-py's qwen3next tensor list has no SSM_ALPHA / SSM_BETA: Qwen3.5's split in_proj_a has no name
    const Error e2 = capture([&] {
        (void)sf::model::plan_gguf_conversion(cfg, {t("model.layers.0.linear_attn.in_proj_a.weight", {4, 16})});
    });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e2.what()).find("no GGUF name"), std::string::npos) << e2.what();
    const Error e3 = capture([&] {
        (void)sf::model::plan_gguf_conversion(
            parse(R"({"architectures": ["Qwen3NextForCausalLM"], "num_hidden_layers": 1, "linear_key_head_dim": 2,
                "linear_value_head_dim": 3, "linear_num_key_heads": 3, "linear_num_value_heads": 4})"),
            {t("model.layers.0.linear_attn.in_proj_qkvz.weight", {32, 16})});
    });
    EXPECT_EQ(e3.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e3.what()).find("multiple of linear_num_key_heads"), std::string::npos) << e3.what();
}

// ---------------------------------------------------------------------------------------------- transforms

TEST(ApplyTransform, PermuteLlamaHeadsInterleavesTheRotateHalfPairs) {
    // 2 heads of D = 4 rows, 2 columns; row r holds {10r, 10r + 1}. Within a head new row 2i + j = old j*D/2 + i:
    // head 0 rows (0, 2, 1, 3), head 1 rows (4, 6, 5, 7).
    std::vector<float> w;
    for (int r = 0; r < 8; ++r) w.insert(w.end(), {10.0f * r, 10.0f * r + 1});
    sf::model::apply_transform({TransformKind::PermuteLlamaHeads, 2}, w.data(), {8, 2});
    EXPECT_EQ(w, (std::vector<float>{0, 1, 20, 21, 10, 11, 30, 31, 40, 41, 60, 61, 50, 51, 70, 71}));

    // 1 head of D = 6 (a bias): new (0..5) = old (0, 3, 1, 4, 2, 5)
    std::vector<float> b{0, 1, 2, 3, 4, 5};
    sf::model::apply_transform({TransformKind::PermuteLlamaHeads, 1}, b.data(), {6});
    EXPECT_EQ(b, (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

// conversion/qwen.py _reorder_v_heads: reshape(K, r, head) -> swap -> reshape, after `skip` untouched rows.
TEST(ApplyTransform, TileVHeadRowsTilesTheVPartByKHead) {
    // 1 kept row, then K = 2 groups x r = 3 V heads x 1 row; row r holds {10r, 10r + 1}.
    // V rows (k0v0 k0v1 k0v2 k1v0 k1v1 k1v2) = old 1..6 -> (k0v0 k1v0 k0v1 k1v1 k0v2 k1v2) = old (1 4 2 5 3 6).
    std::vector<float> w;
    for (int r = 0; r < 7; ++r) w.insert(w.end(), {10.0f * r, 10.0f * r + 1});
    sf::model::apply_transform({TransformKind::TileVHeadRows, 2, 1, 1}, w.data(), {7, 2});
    EXPECT_EQ(w, (std::vector<float>{0, 1, 10, 11, 40, 41, 20, 21, 50, 51, 30, 31, 60, 61}));
    // heads of 2 rows, 1-D: K = 2, r = 2: (a0 a1 | b0 b1 | c0 c1 | d0 d1) -> (a | c | b | d)
    std::vector<float> v{0, 1, 2, 3, 4, 5, 6, 7};
    sf::model::apply_transform({TransformKind::TileVHeadRows, 2, 2, 0}, v.data(), {8});
    EXPECT_EQ(v, (std::vector<float>{0, 1, 4, 5, 2, 3, 6, 7}));
}

TEST(ApplyTransform, TileVHeadColumnsTilesEveryRow) {
    // 2 rows of K = 2 x r = 2 V heads of 1 column: columns (0 1 2 3) -> (0 2 1 3)
    std::vector<float> w{0, 1, 2, 3, 10, 11, 12, 13};
    sf::model::apply_transform({TransformKind::TileVHeadColumns, 2, 1, 0}, w.data(), {2, 4});
    EXPECT_EQ(w, (std::vector<float>{0, 2, 1, 3, 10, 12, 11, 13}));
}

// Expected bits from Debian's torch 1.13 (AVX2): -torch.exp(x) on float32 tensors. The first three inputs are ones
// where glibc's expf rounds the other way.
TEST(ApplyTransform, NegExpHasTorchsFloat32Bits) {
    const std::vector<std::uint32_t> in = {0xbfc9e4e9, 0x3e68fe00, 0xc08ed0ac, 0x00000000, 0x3f800000, 0xc0200000};
    const std::vector<std::uint32_t> want = {0xbe537d36, 0xbfa0b420, 0xbc3ce01e, 0xbf800000, 0xc02df854, 0xbda81c2e};
    std::vector<float> v(in.size());
    std::memcpy(v.data(), in.data(), in.size() * 4);
    sf::model::apply_transform({TransformKind::NegExp, 0}, v.data(), {static_cast<std::int64_t>(v.size())});
    std::vector<std::uint32_t> got(v.size());
    std::memcpy(got.data(), v.data(), v.size() * 4);
    for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(got[i], want[i]) << "input #" << i << " 0x" << std::hex << in[i];
}

// Outside SLEEF's range the result is clamped before the reduction could overflow an int (UBSan checks the path):
// NaN stays NaN, a huge A_log gives -inf, a very negative one -0.
TEST(ApplyTransform, NegExpOutsideTheRangeOfFloatExp) {
    std::vector<float> v{std::numeric_limits<float>::quiet_NaN(), 1e30f, -1e30f, 200.0f, -200.0f};
    sf::model::apply_transform({TransformKind::NegExp, 0}, v.data(), {static_cast<std::int64_t>(v.size())});
    EXPECT_TRUE(std::isnan(v[0]));
    EXPECT_EQ(v[1], -std::numeric_limits<float>::infinity());
    EXPECT_EQ(v[2], 0.0f);
    EXPECT_TRUE(std::signbit(v[2]));
    EXPECT_EQ(v[3], -std::numeric_limits<float>::infinity());
    EXPECT_EQ(v[4], 0.0f);
}

TEST(ApplyTransform, AddOneShiftsEveryValue) {
    std::vector<float> v{-1.0f, 0.0f, 0.5f, 2.0f};
    sf::model::apply_transform({TransformKind::AddOne, 0}, v.data(), {2, 2});
    EXPECT_EQ(v, (std::vector<float>{0.0f, 1.0f, 1.5f, 3.0f}));
}

// ---------------------------------------------------------------------------------------------- rope_freqs

namespace {

std::string reference_script() {
    if (const char* src = std::getenv("SHARDFORGE_SOURCE_DIR")) return std::string(src) + "/tests/reference/rope_freqs.py";
    return (std::filesystem::path(SHARDFORGE_TEST_SOURCE_DIR) / "tests/reference/rope_freqs.py").string();
}

}  // namespace

// Llama 3.1 8B rope parameters; reference: tests/reference/rope_freqs.py, independent numpy float32 code.
TEST(RopeFreqs, MatchesANumpyFloat32Reference) {
    const auto cfg = parse(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 32,
        "hidden_size": 4096, "num_attention_heads": 32, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"}})");
    const std::vector<float> got = sf::model::llama3_rope_freqs(cfg);
    ASSERT_EQ(got.size(), 64u);  // head_dim 128 / 2
    EXPECT_EQ(got.front(), 1.0f);
    EXPECT_EQ(got.back(), 8.0f);

    // python3 and numpy are installed by jobs/install-deps.sh: their absence fails the test, never skips it.
    ASSERT_TRUE(std::filesystem::exists("/usr/bin/python3")) << "no /usr/bin/python3 for the numpy reference";
    const std::string script = reference_script();
    ASSERT_TRUE(std::filesystem::exists(script)) << "reference script not found: " << script;
    const std::string cmd = "/usr/bin/python3 '" + script + "' 500000 128 8 1 4 8192 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string text;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
    const int rc = ::pclose(p);
    ASSERT_EQ(rc, 0) << text;
    std::istringstream in(text);
    std::vector<std::uint32_t> want;
    for (std::string hex; in >> hex;) want.push_back(static_cast<std::uint32_t>(std::stoul(hex, nullptr, 16)));
    ASSERT_EQ(want.size(), got.size()) << text;
    int shown = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
        const std::uint32_t g = sf::core::f32_bits(got[i]);
        if (g != want[i] && shown++ < 10)
            ADD_FAILURE() << "index " << i << ": got " << got[i] << " (0x" << std::hex << g << "), expected 0x" << want[i];
    }
}

TEST(RopeFreqs, EmptyWithoutLlama3Scaling) {
    EXPECT_TRUE(sf::model::llama3_rope_freqs(parse(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"type": "linear", "factor": 2.0}})")).empty());
    // "type" spelling and upper case are accepted, as the converter's .lower() after mirroring
    EXPECT_EQ(sf::model::llama3_rope_freqs(parse(R"({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1,
        "hidden_size": 64, "num_attention_heads": 4, "rope_scaling": {"type": "LLAMA3"}})")).size(), 8u);
}

// ---------------------------------------------------------------------------------------------- Gemma 4
// llama.cpp's conversion/gemma.py Gemma4Model on the text of a Gemma4ForConditionalGeneration checkpoint with the
// MoE block and per-layer embeddings: no norm shift, the tower tensors skipped, layer_scalar / router.scale /
// router.per_expert_scale renamed, fused experts kept 3-D, the proportional-rope rope_freqs generated first.
namespace {
const char* gemma4_text_config = R"("text_config": {"model_type": "gemma4_text", "num_hidden_layers": 2,
    "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2,
    "num_global_key_value_heads": 1, "head_dim": 8, "global_head_dim": 16, "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-06, "sliding_window": 512, "final_logit_softcapping": 30.0, "num_kv_shared_layers": 0,
    "hidden_size_per_layer_input": 4, "layer_types": ["sliding_attention", "full_attention"], "num_experts": 4,
    "top_k_experts": 2, "moe_intermediate_size": 8, "rope_parameters": {"full_attention": {"partial_rotary_factor":
    0.25, "rope_theta": 1000000.0, "rope_type": "proportional"}, "sliding_attention": {"rope_theta": 10000.0,
    "rope_type": "default"}}})";
}  // namespace

TEST(GgufConversion, Gemma4TextOfTheConditionalGenerationCheckpoint) {
    const auto cfg = parse(std::string(R"({"architectures": ["Gemma4ForConditionalGeneration"], "model_type": "gemma4",
        "vision_config": {"model_type": "gemma4_vision"}, )") + gemma4_text_config + "}");
    const std::string L = "model.language_model.layers.0.";
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, {
        t("model.audio_tower.layers.0.self_attn.per_dim_scale", {8}),
        t("model.embed_audio.embedding_projection.weight", {16, 8}),
        t("model.embed_vision.embedding_projection.weight", {16, 8}),
        t("model.language_model.embed_tokens.weight", {32, 16}),
        t("model.language_model.embed_tokens_per_layer.weight", {32, 8}),
        t(L + "experts.down_proj", {4, 16, 8}),
        t(L + "experts.gate_up_proj", {4, 16, 16}),
        t(L + "layer_scalar", {1}),
        t(L + "per_layer_input_gate.weight", {4, 16}),
        t(L + "per_layer_projection.weight", {16, 4}),
        t(L + "post_feedforward_layernorm_1.weight", {16}),
        t(L + "post_per_layer_input_norm.weight", {16}),
        t(L + "pre_feedforward_layernorm.weight", {16}),
        t(L + "router.per_expert_scale", {4}),
        t(L + "router.proj.weight", {4, 16}),
        t(L + "router.scale", {16}),
        t(L + "self_attn.q_norm.weight", {8}),
        t("model.language_model.norm.weight", {16}),
        t("model.language_model.per_layer_model_projection.weight", {8, 16}),
        t("model.language_model.per_layer_projection_norm.weight", {4}),
        t("model.vision_tower.encoder.layers.0.self_attn.q_proj.linear.weight", {8, 8}),
    }, 32);
    EXPECT_EQ(c.arch, "gemma4");
    expect_tensors(c, {
        {"rope_freqs.weight", {8}, {}, {}, true},
        {"token_embd.weight", {32, 16}, src({"model.language_model.embed_tokens.weight"})},
        {"per_layer_token_embd.weight", {32, 8}, src({"model.language_model.embed_tokens_per_layer.weight"})},
        {"blk.0.ffn_down_exps.weight", {4, 16, 8}, src({"model.language_model.layers.0.experts.down_proj"})},
        {"blk.0.ffn_gate_up_exps.weight", {4, 16, 16}, src({"model.language_model.layers.0.experts.gate_up_proj"})},
        {"blk.0.layer_output_scale.weight", {1}, src({"model.language_model.layers.0.layer_scalar"}), {}, true},
        {"blk.0.inp_gate.weight", {4, 16}, src({"model.language_model.layers.0.per_layer_input_gate.weight"})},
        {"blk.0.proj.weight", {16, 4}, src({"model.language_model.layers.0.per_layer_projection.weight"})},
        {"blk.0.post_ffw_norm_1.weight", {16}, src({"model.language_model.layers.0.post_feedforward_layernorm_1.weight"}),
         {}, true},
        {"blk.0.post_norm.weight", {16}, src({"model.language_model.layers.0.post_per_layer_input_norm.weight"}), {},
         true},
        {"blk.0.ffn_norm.weight", {16}, src({"model.language_model.layers.0.pre_feedforward_layernorm.weight"}), {}, true},
        {"blk.0.ffn_down_exps.scale", {4}, src({"model.language_model.layers.0.router.per_expert_scale"}), {}, true},
        {"blk.0.ffn_gate_inp.weight", {4, 16}, src({"model.language_model.layers.0.router.proj.weight"}), {}, true},
        {"blk.0.ffn_gate_inp.scale", {16}, src({"model.language_model.layers.0.router.scale"}), {}, true},
        {"blk.0.attn_q_norm.weight", {8}, src({"model.language_model.layers.0.self_attn.q_norm.weight"}), {}, true},
        {"output_norm.weight", {16}, src({"model.language_model.norm.weight"}), {}, true},
        {"per_layer_model_proj.weight", {8, 16}, src({"model.language_model.per_layer_model_projection.weight"})},
        {"per_layer_proj_norm.weight", {4}, src({"model.language_model.per_layer_projection_norm.weight"}), {}, true},
    });
    // 16 / 2 = 8 rope pairs, of which int(16 * 0.25 / 2) = 2 rotate
    EXPECT_EQ(c.tensors[0].generated, (std::vector<float>{1, 1, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f, 1e30f}));
    EXPECT_EQ(c.dropped.size(), 4u);
    auto i32s = [](std::vector<std::int32_t> v) { return GgufValue::arr_i32(std::move(v)); };
    expect_kvs(c.arch_kvs, {
        u32("gemma4.block_count", 2), u32("gemma4.context_length", 4096), u32("gemma4.embedding_length", 16),
        u32("gemma4.feed_forward_length", 32), u32("gemma4.attention.head_count", 2),
        {"gemma4.attention.head_count_kv", i32s({2, 1})},  // sliding: num_key_value_heads, full: global
        f32("gemma4.rope.freq_base", 1e6f), f32("gemma4.rope.freq_base_swa", 1e4f),
        f32("gemma4.attention.layer_norm_rms_epsilon", 1e-6f), u32("gemma4.expert_count", 4),
        u32("gemma4.expert_used_count", 2), u32("gemma4.attention.key_length", 16),
        u32("gemma4.attention.value_length", 16), f32("gemma4.final_logit_softcapping", 30.0f),
        u32("gemma4.attention.sliding_window", 512), u32("gemma4.attention.shared_kv_layers", 0),
        u32("gemma4.embedding_length_per_layer_input", 4),
        {"gemma4.attention.sliding_window_pattern", GgufValue::arr_bool({true, false})},
        u32("gemma4.attention.key_length_swa", 8), u32("gemma4.attention.value_length_swa", 8),
        u32("gemma4.expert_feed_forward_length", 8), u32("gemma4.rope.dimension_count", 16),
        u32("gemma4.rope.dimension_count_swa", 8),
    });
    EXPECT_EQ(c.file_type_pos, 13u);  // general.file_type right after the base keys (before the softcap)
}

// use_double_wide_mlp: the KV-shared layers' MLP is twice as wide (feed_forward_length becomes a per-layer array);
// the vocabulary trim of Gemma3Model applies to token_embd only, not to the per-layer embedding.
TEST(GgufConversion, Gemma4DoubleWideMlpAndVocabTrim) {
    auto j = nlohmann::json::parse(std::string(gemma4_text_config).substr(15));
    j["architectures"] = {"Gemma4ForCausalLM"};
    j["num_kv_shared_layers"] = 1;
    j["use_double_wide_mlp"] = true;
    j.erase("num_global_key_value_heads");
    const GgufConversion c = sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j), {
        t("model.embed_tokens.weight", {40, 16}), t("model.embed_tokens_per_layer.weight", {40, 8})}, 32);
    expect_tensors(c, {
        {"rope_freqs.weight", {8}, {}, {}, true},
        {"token_embd.weight", {32, 16}, {{"model.embed_tokens.weight", 0, 32}}},
        {"per_layer_token_embd.weight", {40, 8}, src({"model.embed_tokens_per_layer.weight"})},
    });
    const GgufKV* ff = nullptr;
    const GgufKV* kv_heads = nullptr;
    for (const auto& kv : c.arch_kvs) {
        if (kv.key == "gemma4.feed_forward_length") ff = &kv;
        if (kv.key == "gemma4.attention.head_count_kv") kv_heads = &kv;
    }
    ASSERT_NE(ff, nullptr);
    EXPECT_TRUE(ff->value == GgufValue::arr_i32({32, 64}));
    ASSERT_NE(kv_heads, nullptr);
    EXPECT_TRUE(kv_heads->value == GgufValue::u32(2));  // no global KV head count: one value for all layers
}

TEST(GgufConversion, Gemma4RefusesWhatTheConverterAssertsOn) {
    auto plan = [](const std::function<void(nlohmann::json&)>& edit) {
        auto j = nlohmann::json::parse(std::string(gemma4_text_config).substr(15));
        j["architectures"] = {"Gemma4ForCausalLM"};
        edit(j);
        return capture([&] { (void)sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j), {}, 32); });
    };
    const Error e1 = plan([](nlohmann::json& j) { j["rope_parameters"]["full_attention"]["rope_type"] = "default"; });
    EXPECT_EQ(e1.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e1.what()).find("proportional"), std::string::npos) << e1.what();
    const Error e2 = plan([](nlohmann::json& j) { j.erase("global_head_dim"); });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e2.what()).find("global_head_dim"), std::string::npos) << e2.what();
    const Error e3 = plan([](nlohmann::json& j) { j.erase("num_kv_shared_layers"); });
    EXPECT_NE(std::string(e3.what()).find("num_kv_shared_layers"), std::string::npos) << e3.what();
    const Error e4 = plan([](nlohmann::json& j) { j["layer_types"] = {"sliding_attention"}; });
    EXPECT_NE(std::string(e4.what()).find("layer_types has 1 entries"), std::string::npos) << e4.what();
    // a head size from per_layer_config (transformers' newer config) is used when global_head_dim is absent
    auto j = nlohmann::json::parse(std::string(gemma4_text_config).substr(15));
    j["architectures"] = {"Gemma4ForCausalLM"};
    j.erase("global_head_dim");
    j["per_layer_config"] = {{"1", {{"head_dim", 32}}}};
    const GgufConversion c = sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j), {}, 32);
    ASSERT_EQ(c.tensors.size(), 1u);
    EXPECT_EQ(c.tensors[0].shape, Shape{16});
}

// ---------------------------------------------------------------------------------------------- deepseek2
// llama.cpp's conversion/deepseek.py DeepseekV2Model: expected values written from its modify_tensors (kv_b_proj
// viewed as [heads, nope + v, rank], split on dim 1, k_b transposed), set_gguf_parameters (num_key_value_heads
// forced to 1 before TextModel's keys; MLA key lengths; 0.1 * mscale_all_dim) and gguf-py's constants.py key names.
namespace {
const char* ds2_config = R"({"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "num_hidden_layers": 2, "hidden_size": 4, "intermediate_size": 8, "moe_intermediate_size": 6,
    "num_attention_heads": 2, "num_key_value_heads": 2, "q_lora_rank": 5, "kv_lora_rank": 4, "qk_nope_head_dim": 2,
    "qk_rope_head_dim": 2, "v_head_dim": 3, "n_routed_experts": 2, "n_shared_experts": 1, "num_experts_per_tok": 1,
    "n_group": 1, "topk_group": 1, "first_k_dense_replace": 1, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "routed_scaling_factor": 2.5, "norm_topk_prob": true, "max_position_embeddings": 163840, "vocab_size": 8,
    "rms_norm_eps": 1e-06, "rope_theta": 10000, "num_nextn_predict_layers": 1,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"}})";
}  // namespace

TEST(GgufConversion, DeepSeek2SplitsKvBPerHeadStacksExpertsAndDropsMtp) {
    const auto cfg = parse(ds2_config);
    const char* kv = "model.layers.0.self_attn.kv_b_proj.weight";
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, {
        t("model.layers.2.self_attn.q_a_proj.weight", {5, 4}),  // the MTP layer (num_hidden_layers 2)
        t("model.layers.2.eh_proj.weight", {4, 8}),
        t("model.embed_tokens.weight", {8, 4}),
        t("model.layers.0.mlp.down_proj.weight", {4, 8}),
        t(kv, {10, 4}),
        t("model.layers.0.self_attn.q_a_proj.weight", {5, 4}),
        t("model.layers.1.mlp.experts.0.down_proj.weight", {4, 6}),
        t("model.layers.1.mlp.experts.0.gate_proj.weight", {6, 4}),
        t("model.layers.1.mlp.experts.0.up_proj.weight", {6, 4}),
        t("model.layers.1.mlp.experts.1.down_proj.weight", {4, 6}),
        t("model.layers.1.mlp.experts.1.gate_proj.weight", {6, 4}),
        t("model.layers.1.mlp.experts.1.up_proj.weight", {6, 4}),
        t("model.layers.1.mlp.gate.e_score_correction_bias", {2}, "model.safetensors", DType::F32),
        t("model.layers.1.mlp.gate.weight", {2, 4}),
        t("model.layers.1.mlp.shared_experts.up_proj.weight", {6, 4}),
    });
    EXPECT_EQ(c.arch, "deepseek2");
    EXPECT_EQ(c.block_count, 2);
    const Transform transpose{TransformKind::TransposeLastTwo, 0};
    // kv_b rows: head 0 = k rows 0-1, v rows 2-4; head 1 = k rows 5-6, v rows 7-9
    expect_tensors(c, {
        {"token_embd.weight", {8, 4}, src({"model.embed_tokens.weight"})},
        {"blk.0.ffn_down.weight", {4, 8}, src({"model.layers.0.mlp.down_proj.weight"})},
        {"blk.0.attn_k_b.weight", {2, 4, 2}, {{kv, 0, 2}, {kv, 5, 7}}, {transpose}},
        {"blk.0.attn_v_b.weight", {2, 3, 4}, {{kv, 2, 5}, {kv, 7, 10}}},
        {"blk.0.attn_q_a.weight", {5, 4}, src({"model.layers.0.self_attn.q_a_proj.weight"})},
        {"blk.1.ffn_down_exps.weight", {2, 4, 6},
         src({"model.layers.1.mlp.experts.0.down_proj.weight", "model.layers.1.mlp.experts.1.down_proj.weight"})},
        {"blk.1.ffn_gate_exps.weight", {2, 6, 4},
         src({"model.layers.1.mlp.experts.0.gate_proj.weight", "model.layers.1.mlp.experts.1.gate_proj.weight"})},
        {"blk.1.ffn_up_exps.weight", {2, 6, 4},
         src({"model.layers.1.mlp.experts.0.up_proj.weight", "model.layers.1.mlp.experts.1.up_proj.weight"})},
        {"blk.1.exp_probs_b.bias", {2}, src({"model.layers.1.mlp.gate.e_score_correction_bias"}), {}, true},
        {"blk.1.ffn_gate_inp.weight", {2, 4}, src({"model.layers.1.mlp.gate.weight"}), {}, true},
        {"blk.1.ffn_up_shexp.weight", {6, 4}, src({"model.layers.1.mlp.shared_experts.up_proj.weight"})},
    });
    EXPECT_EQ(c.dropped, (std::vector<std::string>{"model.layers.2.eh_proj.weight",
                                                   "model.layers.2.self_attn.q_a_proj.weight"}));
    expect_kvs(c.arch_kvs, {
        u32("deepseek2.block_count", 2), u32("deepseek2.context_length", 163840),
        u32("deepseek2.embedding_length", 4), u32("deepseek2.feed_forward_length", 8),
        u32("deepseek2.attention.head_count", 2), u32("deepseek2.attention.head_count_kv", 1),
        str("deepseek2.rope.scaling.type", "yarn"), f32("deepseek2.rope.scaling.factor", 40.0f),
        u32("deepseek2.rope.scaling.original_context_length", 4096),
        f32("deepseek2.rope.scaling.yarn_beta_fast", 32.0f), f32("deepseek2.rope.scaling.yarn_beta_slow", 1.0f),
        f32("deepseek2.rope.freq_base", 10000.0f), f32("deepseek2.attention.layer_norm_rms_epsilon", 1e-6f),
        u32("deepseek2.expert_count", 2), u32("deepseek2.expert_used_count", 1),
        u32("deepseek2.expert_group_count", 1), u32("deepseek2.expert_group_used_count", 1),
        u32("deepseek2.expert_gating_func", 2),  // sigmoid
        u32("deepseek2.leading_dense_block_count", 1), u32("deepseek2.vocab_size", 8),
        u32("deepseek2.attention.q_lora_rank", 5), u32("deepseek2.attention.kv_lora_rank", 4),
        u32("deepseek2.attention.key_length", 6), u32("deepseek2.attention.value_length", 4),
        u32("deepseek2.attention.key_length_mla", 4), u32("deepseek2.attention.value_length_mla", 3),
        u32("deepseek2.expert_feed_forward_length", 6), u32("deepseek2.expert_shared_count", 1),
        f32("deepseek2.expert_weights_scale", 2.5f), {"deepseek2.expert_weights_norm", GgufValue::boolean(true)},
        u32("deepseek2.rope.dimension_count", 2), f32("deepseek2.rope.scaling.yarn_log_multiplier", 0.1f),
    });
    EXPECT_EQ(c.file_type_pos, 18u);  // general.file_type ends TextModel's keys
}

TEST(GgufConversion, DeepSeek2WithoutQLoraUsesQProjAndNoQLoraKey) {
    nlohmann::json j = nlohmann::json::parse(ds2_config);
    j["q_lora_rank"] = nullptr;  // DeepSeek-V2-Lite
    const GgufConversion c = sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j), {
        t("model.layers.0.self_attn.q_proj.weight", {8, 4}),
    });
    expect_tensors(c, {{"blk.0.attn_q.weight", {8, 4}, src({"model.layers.0.self_attn.q_proj.weight"})}});
    for (const auto& kv : c.arch_kvs) EXPECT_NE(kv.key, "deepseek2.attention.q_lora_rank");
}

TEST(GgufConversion, DeepSeek2RefusesAKvBProjThatDoesNotSplit) {
    const auto cfg = parse(ds2_config);
    const Error e = capture([&] {
        (void)sf::model::plan_gguf_conversion(cfg, {t("model.layers.0.self_attn.kv_b_proj.weight", {9, 4})});
    });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), "model.layers.0.self_attn.kv_b_proj.weight");
    EXPECT_NE(std::string(e.what()).find("qk_nope_head_dim"), std::string::npos) << e.what();
    nlohmann::json j = nlohmann::json::parse(ds2_config);
    j.erase("v_head_dim");
    const Error e2 = capture([&] {
        (void)sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j),
                                              {t("model.layers.0.self_attn.kv_b_proj.weight", {10, 4})});
    });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e2.what()).find("v_head_dim"), std::string::npos) << e2.what();
}

TEST(ApplyTransform, TransposeLastTwoTransposesEveryMatrix) {
    // final shape [2, 3, 2]: each outer matrix is stored [2, 3] and becomes [3, 2]
    std::vector<float> w{0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15};
    sf::model::apply_transform({TransformKind::TransposeLastTwo, 0}, w.data(), {2, 3, 2});
    EXPECT_EQ(w, (std::vector<float>{0, 3, 1, 4, 2, 5, 10, 13, 11, 14, 12, 15}));
}

namespace {

// MiniMax-M2: every layer MoE with per-expert w1/w2/w3, the router bias under block_sparse_moe, q/k norms over all
// heads; intermediate_size is the expert size and rotary_dim the rotated part of a head.
const char* minimax_m2_config = R"({"architectures": ["MiniMaxM2ForCausalLM"], "model_type": "minimax_m2",
    "num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
    "intermediate_size": 8, "num_local_experts": 2, "num_experts_per_tok": 1, "scoring_func": "sigmoid",
    "rotary_dim": 4, "rms_norm_eps": 1e-06, "rope_theta": 5000000, "max_position_embeddings": 196608,
    "use_qk_norm": true, "tie_word_embeddings": false})";

std::vector<HfTensor> minimax_m2_tensors() {
    std::vector<HfTensor> ts = {
        t("model.embed_tokens.weight", {64, 16}),
        t("lm_head.weight", {64, 16}),
        t("model.norm.weight", {16}),
        t("model.layers.0.input_layernorm.weight", {16}),
        t("model.layers.0.post_attention_layernorm.weight", {16}),
        t("model.layers.0.self_attn.q_proj.weight", {16, 16}),
        t("model.layers.0.self_attn.q_norm.weight", {16}),
        t("model.layers.0.self_attn.k_norm.weight", {8}),
        t("model.layers.0.block_sparse_moe.gate.weight", {2, 16}),
        t("model.layers.0.block_sparse_moe.e_score_correction_bias", {2}, "model.safetensors", DType::F32),
    };
    for (int e = 0; e < 2; ++e)
        for (const char* w : {"w1", "w2", "w3"})
            ts.push_back(t("model.layers.0.block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight",
                           std::string(w) == "w2" ? Shape{16, 8} : Shape{8, 16}));
    return ts;
}

std::vector<SourceSlice> minimax_experts(const char* w) {
    std::vector<SourceSlice> v;
    for (int e = 0; e < 2; ++e)
        v.push_back({"model.layers.0.block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight"});
    return v;
}

}  // namespace

TEST(GgufConversion, MiniMaxM2StacksW1W2W3AndMapsTheRouterBiasAndFullWidthNorms) {
    const GgufConversion c = sf::model::plan_gguf_conversion(parse(minimax_m2_config), minimax_m2_tensors());
    EXPECT_EQ(c.arch, "minimax-m2");
    EXPECT_EQ(c.block_count, 1);
    expect_tensors(c, {
        {"output.weight", {64, 16}, src({"lm_head.weight"})},
        {"token_embd.weight", {64, 16}, src({"model.embed_tokens.weight"})},
        // visited in name order: the bias (e_score_...) before the experts, stacked at the last one as w1, w2, w3
        {"blk.0.exp_probs_b.bias", {2}, src({"model.layers.0.block_sparse_moe.e_score_correction_bias"}), {}, true},
        {"blk.0.ffn_gate_exps.weight", {2, 8, 16}, minimax_experts("w1")},
        {"blk.0.ffn_down_exps.weight", {2, 16, 8}, minimax_experts("w2")},
        {"blk.0.ffn_up_exps.weight", {2, 8, 16}, minimax_experts("w3")},
        {"blk.0.ffn_gate_inp.weight", {2, 16}, src({"model.layers.0.block_sparse_moe.gate.weight"}), {}, true},
        {"blk.0.attn_norm.weight", {16}, src({"model.layers.0.input_layernorm.weight"}), {}, true},
        {"blk.0.ffn_norm.weight", {16}, src({"model.layers.0.post_attention_layernorm.weight"}), {}, true},
        // full width: [n_kv_head * head_dim] and [n_head * head_dim], no per-head reshaping
        {"blk.0.attn_k_norm.weight", {8}, src({"model.layers.0.self_attn.k_norm.weight"}), {}, true},
        {"blk.0.attn_q_norm.weight", {16}, src({"model.layers.0.self_attn.q_norm.weight"}), {}, true},
        // no Llama head permutation
        {"blk.0.attn_q.weight", {16, 16}, src({"model.layers.0.self_attn.q_proj.weight"})},
        {"output_norm.weight", {16}, src({"model.norm.weight"}), {}, true},
    });
    const std::vector<GgufKV> want = {
        u32("minimax-m2.block_count", 1), u32("minimax-m2.context_length", 196608),
        u32("minimax-m2.embedding_length", 16), u32("minimax-m2.feed_forward_length", 8),
        u32("minimax-m2.attention.head_count", 2), u32("minimax-m2.attention.head_count_kv", 1),
        f32("minimax-m2.rope.freq_base", 5e6f), f32("minimax-m2.attention.layer_norm_rms_epsilon", 1e-6f),
        u32("minimax-m2.expert_count", 2), u32("minimax-m2.expert_used_count", 1),
        u32("minimax-m2.expert_gating_func", 2), u32("minimax-m2.attention.key_length", 8),
        u32("minimax-m2.attention.value_length", 8), u32("minimax-m2.expert_feed_forward_length", 8),
        u32("minimax-m2.rope.dimension_count", 4)};
    expect_kvs(c.arch_kvs, want);
    EXPECT_EQ(c.file_type_pos, 13u);  // TextModel's keys, then MiniMaxM2Model's two
}

TEST(GgufConversion, MiniMaxM2RefusesMissingHparamsAndIncompleteExperts) {
    auto with = [](std::string from, std::string to) {
        std::string c = minimax_m2_config;
        const std::size_t at = c.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return c.replace(at, from.size(), to);
    };
    // rotary_dim: MiniMaxM2Model.set_gguf_parameters reads it (find_hparam, required)
    const Error e1 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("\"rotary_dim\": 4,", "")), minimax_m2_tensors());
    });
    EXPECT_EQ(e1.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e1.what()).find("rotary_dim"), std::string::npos) << e1.what();
    // the expert count stacks the experts: without it there is nothing to stack by
    const Error e2 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("\"num_local_experts\": 2,", "")), minimax_m2_tensors());
    });
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e2.what()).find("num_local_experts"), std::string::npos) << e2.what();
    // one expert's w3 missing: the converter never stacks the layer; refused naming a tensor left over
    std::vector<HfTensor> ts = minimax_m2_tensors();
    std::erase_if(ts, [](const HfTensor& x) { return x.name == "model.layers.0.block_sparse_moe.experts.1.w3.weight"; });
    const Error e3 = capture([&] { (void)sf::model::plan_gguf_conversion(parse(minimax_m2_config), ts); });
    EXPECT_EQ(e3.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e3.what()).find("incomplete expert set"), std::string::npos) << e3.what();
    // an unknown router scoring function
    const Error e4 = capture([&] {
        (void)sf::model::plan_gguf_conversion(parse(with("\"sigmoid\"", "\"tanh\"")), minimax_m2_tensors());
    });
    EXPECT_EQ(e4.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e4.what()).find("tanh"), std::string::npos) << e4.what();
}

// ---------------------------------------------------------------------------------------------- llama4
namespace {
// Maverick's shape of config (interleave_moe_layer_step 2, no rope scaling), nested as Llama4ForConditionalGeneration
// writes it: the text model's keys under text_config.
const char* llama4_config = R"({"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
    "tie_word_embeddings": false, "vision_config": {"hidden_size": 32, "model_type": "llama4_vision_model"},
    "text_config": {"model_type": "llama4_text", "num_hidden_layers": 2, "hidden_size": 64, "head_dim": 16,
    "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 32, "intermediate_size_mlp": 96,
    "interleave_moe_layer_step": 2, "num_local_experts": 4, "num_experts_per_tok": 1, "vocab_size": 100,
    "max_position_embeddings": 1048576, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "rope_scaling": null,
    "use_qk_norm": false, "attention_chunk_size": 8192, "no_rope_layers": [1, 1]}})";
SourceSlice col_range(const char* name, std::int64_t begin, std::int64_t end) {
    SourceSlice s{name};
    s.col_begin = begin;
    s.col_end = end;
    s.transpose = true;
    return s;
}
}  // namespace

// llama.cpp's conversion/llama.py Llama4Model: no Q/K un-permute; gate_up_proj [E, H, 2F] transposed and split on dim -2,
// i.e. gate = columns [0, F), up = columns [F, 2F) of each expert's [H, 2F], each as [E, F, H]; down_proj [E, F, H]
// gets ".weight" and becomes [E, H, F]; the router is ffn_gate_inp (f32); "language_model." is stripped, the
// projector and the vision tower are not converted. Metadata: intermediate_size_mlp is feed_forward_length,
// intermediate_size the experts' length, after LlamaModel's vocab_size and rope dimension.
TEST(GgufConversion, Llama4TextOfTheVisionCheckpoint) {
    const auto cfg = parse(llama4_config);
    const std::string l0 = "language_model.model.layers.0.", l1 = "language_model.model.layers.1.";
    const GgufConversion c = sf::model::plan_gguf_conversion(
        cfg, {t("vision_model.model.layers.0.self_attn.q_proj.weight", {32, 32}),
              t("multi_modal_projector.linear_1.weight", {64, 128}),
              t("language_model.model.norm.weight", {64}),
              t(l1 + "self_attn.k_proj.weight", {32, 64}),
              t(l1 + "feed_forward.shared_expert.up_proj.weight", {32, 64}),
              t(l1 + "feed_forward.router.weight", {4, 64}),
              t(l1 + "feed_forward.experts.gate_up_proj", {4, 64, 64}),
              t(l1 + "feed_forward.experts.down_proj", {4, 32, 64}),
              t(l0 + "self_attn.q_proj.weight", {64, 64}),
              t(l0 + "feed_forward.gate_proj.weight", {96, 64}),
              t("language_model.model.embed_tokens.weight", {100, 64}),
              t("language_model.lm_head.weight", {100, 64})});
    EXPECT_EQ(c.arch, "llama4");
    const std::string g1 = l1 + "feed_forward.experts.gate_up_proj";
    expect_tensors(c, {
        {"output.weight", {100, 64}, src({"language_model.lm_head.weight"})},
        {"token_embd.weight", {100, 64}, src({"language_model.model.embed_tokens.weight"})},
        {"blk.0.ffn_gate.weight", {96, 64}, src({"language_model.model.layers.0.feed_forward.gate_proj.weight"})},
        {"blk.0.attn_q.weight", {64, 64}, src({"language_model.model.layers.0.self_attn.q_proj.weight"})},
        {"blk.1.ffn_down_exps.weight", {4, 64, 32},
         {cols("language_model.model.layers.1.feed_forward.experts.down_proj", 0, 1, true)}},
        {"blk.1.ffn_gate_exps.weight", {4, 32, 64}, {col_range(g1.c_str(), 0, 32)}},
        {"blk.1.ffn_up_exps.weight", {4, 32, 64}, {col_range(g1.c_str(), 32, 64)}},
        {"blk.1.ffn_gate_inp.weight", {4, 64}, src({"language_model.model.layers.1.feed_forward.router.weight"}), {}, true},
        {"blk.1.ffn_up_shexp.weight", {32, 64},
         src({"language_model.model.layers.1.feed_forward.shared_expert.up_proj.weight"})},
        {"blk.1.attn_k.weight", {32, 64}, src({"language_model.model.layers.1.self_attn.k_proj.weight"})},
        {"output_norm.weight", {64}, src({"language_model.model.norm.weight"}), {}, true},
    });
    EXPECT_EQ(c.dropped, (std::vector<std::string>{"multi_modal_projector.linear_1.weight",
                                                   "vision_model.model.layers.0.self_attn.q_proj.weight"}));
    expect_kvs(c.arch_kvs, {
        u32("llama4.block_count", 2),
        u32("llama4.context_length", 1048576),
        u32("llama4.embedding_length", 64),
        u32("llama4.feed_forward_length", 96),
        u32("llama4.attention.head_count", 4),
        u32("llama4.attention.head_count_kv", 2),
        f32("llama4.rope.freq_base", 500000.0f),
        f32("llama4.attention.layer_norm_rms_epsilon", 1e-05f),
        u32("llama4.expert_count", 4),
        u32("llama4.expert_used_count", 1),
        u32("llama4.attention.key_length", 16),
        u32("llama4.attention.value_length", 16),
        u32("llama4.vocab_size", 100),
        u32("llama4.rope.dimension_count", 16),
        u32("llama4.interleave_moe_layer_step", 2),
        u32("llama4.expert_feed_forward_length", 32),
    });
    EXPECT_EQ(c.file_type_pos, 12u);  // general.file_type right after TextModel's keys
}

// Scout's llama3 rope scaling (low_freq_factor == high_freq_factor == 1): rope_freqs.weight first, 1 for wavelengths
// under original_max_position_embeddings (8192), the factor (16) above. head_dim 16, theta 5e5: the wavelengths
// 2 pi * 5e5^(i/8) pass 8192 between i = 4 (4443) and i = 5 (22846). layer_types all full attention (MobileLLM-style)
// add attention.sliding_window 0.
TEST(GgufConversion, Llama4ScoutRopeFreqsAndFullAttentionLayers) {
    auto j = nlohmann::json::parse(llama4_config);
    j["text_config"]["rope_scaling"] = {{"factor", 16.0}, {"high_freq_factor", 1.0}, {"low_freq_factor", 1.0},
                                        {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}};
    j["text_config"]["layer_types"] = {"full_attention", "full_attention"};
    const GgufConversion c = sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j),
                                                             {t("language_model.model.norm.weight", {64})});
    ASSERT_EQ(c.tensors.size(), 2u) << show(c.tensors);
    EXPECT_EQ(c.tensors[0].gguf_name, "rope_freqs.weight");
    EXPECT_EQ(c.tensors[0].generated, (std::vector<float>{1, 1, 1, 1, 1, 16, 16, 16}));
    ASSERT_FALSE(c.arch_kvs.empty());
    EXPECT_EQ(c.arch_kvs.back().key, "llama4.attention.sliding_window");
    EXPECT_TRUE(c.arch_kvs.back().value == GgufValue::u32(0));
}

TEST(GgufConversion, Llama4RefusesMalformedFusedExpertsAndAMissingMlpSize) {
    const auto cfg = parse(llama4_config);
    const std::string gu = "language_model.model.layers.1.feed_forward.experts.gate_up_proj";
    for (const Shape& bad : {Shape{4, 64, 63}, Shape{64, 64}}) {
        const Error e = capture([&] { (void)sf::model::plan_gguf_conversion(cfg, {t(gu, bad)}); });
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        EXPECT_EQ(e.tensor(), gu);
        EXPECT_NE(std::string(e.what()).find("[n_expert, n_embd, 2 * n_ff]"), std::string::npos) << e.what();
    }
    const Error d = capture([&] {
        (void)sf::model::plan_gguf_conversion(cfg, {t("language_model.model.layers.1.feed_forward.experts.down_proj",
                                                      {32, 64})});
    });
    EXPECT_EQ(d.kind(), ErrorKind::BadInput);
    auto j = nlohmann::json::parse(llama4_config);
    j["text_config"].erase("intermediate_size_mlp");
    const Error m = capture([&] {
        (void)sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j), {t("language_model.model.norm.weight", {64})});
    });
    EXPECT_EQ(m.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(m.what()).find("intermediate_size_mlp"), std::string::npos) << m.what();
}

// Llama4ForCausalLM (a text-only save of the language model): the same conversion from the plain decoder names.
TEST(GgufConversion, Llama4ForCausalLMUsesThePlainDecoderNames) {
    auto j = nlohmann::json::parse(llama4_config)["text_config"];
    j["architectures"] = {"Llama4ForCausalLM"};
    const GgufConversion c = sf::model::plan_gguf_conversion(
        sf::model::parse_hf_config(j), {t("model.layers.1.feed_forward.experts.gate_up_proj", {4, 64, 64}),
                                        t("model.layers.1.feed_forward.shared_expert.down_proj.weight", {64, 32})});
    EXPECT_EQ(c.arch, "llama4");
    expect_tensors(c, {
        {"blk.1.ffn_gate_exps.weight", {4, 32, 64}, {col_range("model.layers.1.feed_forward.experts.gate_up_proj", 0, 32)}},
        {"blk.1.ffn_up_exps.weight", {4, 32, 64}, {col_range("model.layers.1.feed_forward.experts.gate_up_proj", 32, 64)}},
        {"blk.1.ffn_down_shexp.weight", {64, 32}, src({"model.layers.1.feed_forward.shared_expert.down_proj.weight"})},
    });
}

// ---------------------------------------------------------------- mmproj (convert_hf_to_gguf.py --mmproj)
namespace {
const char* gemma3_vl_config = R"({"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
  "text_config": {"hidden_size": 256, "num_hidden_layers": 1, "model_type": "gemma3_text"},
  "vision_config": {"hidden_size": 64, "image_size": 32, "intermediate_size": 128, "num_attention_heads": 4,
                    "num_hidden_layers": 1, "patch_size": 4}})";

std::filesystem::path mmproj_dir(const std::string& pre) {
    const auto d = std::filesystem::temp_directory_path() / ("sf-mmproj-unit-" + std::to_string(std::rand()));
    std::filesystem::create_directories(d);
    std::ofstream(d / "preprocessor_config.json") << pre;
    return d;
}
}  // namespace

TEST(MmprojConversion, Gemma3MapsTowerAndProjectorWithTheConvertersTypesAndKeys) {
    const auto cfg = parse(gemma3_vl_config);
    EXPECT_TRUE(sf::model::has_mmproj(cfg));
    EXPECT_FALSE(sf::model::has_mmproj(parse(R"({"architectures": ["Gemma3ForCausalLM"], "num_hidden_layers": 1})")));
    const auto dir = mmproj_dir(R"({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "image_seq_length": 16})");
    using sf::core::DType;
    const std::vector<sf::model::HfTensor> ts = {
        {"vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", DType::BF16, {64, 64}, "m.safetensors"},
        {"language_model.model.norm.weight", DType::BF16, {256}, "m.safetensors"},
        {"multi_modal_projector.mm_soft_emb_norm.weight", DType::BF16, {64}, "m.safetensors"},
        {"multi_modal_projector.mm_input_projection_weight", DType::BF16, {64, 256}, "m.safetensors"},
        {"vision_tower.vision_model.embeddings.patch_embedding.weight", DType::BF16, {64, 3, 4, 4}, "m.safetensors"},
    };
    const auto c = sf::model::plan_mmproj_conversion(cfg, dir, ts);
    std::filesystem::remove_all(dir);
    EXPECT_EQ(c.arch, "clip");
    EXPECT_EQ(c.gguf_type, "mmproj");
    ASSERT_EQ(c.tensors.size(), 4u);  // the text model's norm is not the projector's
    // the converter's order: by HF name
    EXPECT_EQ(c.tensors[0].gguf_name, "mm.input_projection.weight");
    EXPECT_EQ(c.tensors[1].gguf_name, "mm.soft_emb_norm.weight");
    EXPECT_EQ(c.tensors[2].gguf_name, "v.patch_embd.weight");  // embeddings. before encoder.
    EXPECT_EQ(c.tensors[3].gguf_name, "v.blk.0.attn_q.weight");
    EXPECT_EQ(c.tensors[0].shape, (sf::core::Shape{64, 256}));  // kept as stored, [vision, text]
    using sf::quant::FType;
    using sf::quant::GgmlType;
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[0], FType::F32), GgmlType::F16);   // forced F16
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[0], FType::Q8_0), GgmlType::F16);
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[1], FType::F16), GgmlType::F32);   // 1-D
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[2], FType::F16), GgmlType::F32);   // .embeddings.
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[3], FType::Q8_0), GgmlType::Q8_0);
    ASSERT_EQ(c.tensors[1].transforms.size(), 1u);  // Gemma3RMSNorm's 1 + w
    EXPECT_EQ(c.tensors[1].transforms[0].kind, sf::model::TransformKind::AddOne);
    EXPECT_TRUE(c.tensors[3].transforms.empty());
    std::map<std::string, sf::formats::GgufValue> kv;
    for (const auto& k : c.arch_kvs) kv[k.key] = k.value;
    EXPECT_EQ(c.file_type_pos, 0u);
    EXPECT_EQ(c.arch_kvs.front().key, "clip.has_vision_encoder");
    EXPECT_EQ(kv.at("clip.vision.projection_dim").as_u64(), 256u);
    EXPECT_EQ(kv.at("clip.projector_type").str, "gemma3");
    EXPECT_EQ(kv.at("clip.vision.projector.scale_factor").as_u64(), 2u);  // (32 / 4) / sqrt(16)
}

TEST(MmprojConversion, RefusesUnmappableTowerTensorsAndOtherClasses) {
    const auto dir = mmproj_dir(R"({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})");
    const std::vector<sf::model::HfTensor> ts = {
        {"vision_tower.vision_model.encoder.layers.0.self_attn.rotary.weight", sf::core::DType::F32, {4}, "m.safetensors"}};
    Error e = capture([&] { (void)sf::model::plan_mmproj_conversion(parse(gemma3_vl_config), dir, ts); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), "vision_tower.vision_model.encoder.layers.0.self_attn.rotary.weight");
    EXPECT_NE(std::string(e.what()).find("cannot map tensor"), std::string::npos) << e.what();
    const auto qwen25vl = parse(R"({"architectures": ["Qwen2_5_VLForConditionalGeneration"], "num_hidden_layers": 1,
                                    "vision_config": {"image_size": 32}})");
    EXPECT_FALSE(sf::model::has_mmproj(qwen25vl));
    e = capture([&] { (void)sf::model::plan_mmproj_conversion(qwen25vl, dir, ts); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    // transformers >= 4.52's names are not the converter's: no projector tensors (the caller writes no file)
    const std::vector<sf::model::HfTensor> newer = {
        {"model.vision_tower.vision_model.post_layernorm.weight", sf::core::DType::F32, {64}, "m.safetensors"}};
    EXPECT_TRUE(sf::model::plan_mmproj_conversion(parse(gemma3_vl_config), dir, newer).tensors.empty());
    std::filesystem::remove(dir / "preprocessor_config.json");
    const std::vector<sf::model::HfTensor> ok = {
        {"vision_tower.vision_model.post_layernorm.weight", sf::core::DType::F32, {64}, "m.safetensors"}};
    e = capture([&] { (void)sf::model::plan_mmproj_conversion(parse(gemma3_vl_config), dir, ok); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);  // no image_mean without the processor files
    EXPECT_NE(std::string(e.what()).find("image_mean"), std::string::npos) << e.what();
    std::filesystem::remove_all(dir);
}

// conversion/llava.py LlavaVisionModel on Mistral3ForConditionalGeneration: the Pixtral tower and Mistral 3's
// projector under gguf-py's MMPROJ names (linear_N as mm.N), q/k un-permuted by the tower's head count, the patch
// embedding and the patch merger F16 at f16 and F32 at every other type, the pixtral keys; refusals.
TEST(MmprojConversion, Mistral3PixtralTowerAndProjector) {
    const std::string config = R"({"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
      "spatial_merge_size": 2, "text_config": {"hidden_size": 256, "num_hidden_layers": 1, "model_type": "mistral"},
      "vision_config": {"hidden_size": 64, "image_size": 32, "intermediate_size": 128, "num_attention_heads": 4,
                        "num_hidden_layers": 3, "patch_size": 4, "model_type": "pixtral", "hidden_act": "silu"}})";
    const auto cfg = parse(config);
    EXPECT_TRUE(sf::model::has_mmproj(cfg));
    const auto dir = mmproj_dir(R"({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})");
    using sf::core::DType;
    const std::vector<sf::model::HfTensor> ts = {
        {"vision_tower.transformer.layers.1.attention.q_proj.weight", DType::BF16, {64, 64}, "m.safetensors"},
        {"vision_tower.transformer.layers.1.attention.v_proj.weight", DType::BF16, {64, 64}, "m.safetensors"},
        {"vision_tower.transformer.layers.1.feed_forward.gate_proj.weight", DType::BF16, {128, 64}, "m.safetensors"},
        {"vision_tower.transformer.layers.1.ffn_norm.weight", DType::BF16, {64}, "m.safetensors"},
        {"vision_tower.patch_conv.weight", DType::BF16, {64, 3, 4, 4}, "m.safetensors"},
        {"vision_tower.ln_pre.weight", DType::BF16, {64}, "m.safetensors"},
        {"multi_modal_projector.patch_merger.merging_layer.weight", DType::BF16, {64, 256}, "m.safetensors"},
        {"multi_modal_projector.norm.weight", DType::BF16, {64}, "m.safetensors"},
        {"multi_modal_projector.linear_2.weight", DType::BF16, {256, 256}, "m.safetensors"},
        {"language_model.model.embed_tokens.weight", DType::BF16, {640, 256}, "m.safetensors"},
        {"language_model.model.layers.0.self_attn.q_proj.weight", DType::BF16, {256, 256}, "m.safetensors"},
    };
    const auto c = sf::model::plan_mmproj_conversion(cfg, dir, ts);
    EXPECT_EQ(c.arch, "clip");
    EXPECT_EQ(c.block_count, 3);
    ASSERT_EQ(c.tensors.size(), 9u);  // nothing of language_model.*, the [IMG_BREAK] row included
    std::vector<std::string> names;
    for (const auto& t : c.tensors) names.push_back(t.gguf_name);
    EXPECT_EQ(names, (std::vector<std::string>{"mm.2.weight", "mm.input_norm.weight", "mm.patch_merger.weight",
                                               "v.pre_ln.weight", "v.patch_embd.weight", "v.blk.1.attn_q.weight",
                                               "v.blk.1.attn_v.weight", "v.blk.1.ffn_gate.weight", "v.blk.1.ln2.weight"}));
    using sf::quant::FType;
    using sf::quant::GgmlType;
    const auto& merger = c.tensors[2];
    const auto& patch = c.tensors[4];
    for (const auto* t : {&merger, &patch}) {
        EXPECT_EQ(sf::model::converter_tensor_type(*t, FType::F16), GgmlType::F16) << t->gguf_name;
        EXPECT_EQ(sf::model::converter_tensor_type(*t, FType::F32), GgmlType::F32) << t->gguf_name;
        EXPECT_EQ(sf::model::converter_tensor_type(*t, FType::BF16), GgmlType::F32) << t->gguf_name;
        EXPECT_EQ(sf::model::converter_tensor_type(*t, FType::Q8_0), GgmlType::F32) << t->gguf_name;
    }
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[0], FType::Q8_0), GgmlType::Q8_0);
    EXPECT_EQ(sf::model::converter_tensor_type(c.tensors[1], FType::F16), GgmlType::F32);  // 1-D
    ASSERT_EQ(c.tensors[5].transforms.size(), 1u);  // attn_q: LlamaModel.permute(n_head = 4)
    EXPECT_EQ(c.tensors[5].transforms[0], (sf::model::Transform{sf::model::TransformKind::PermuteLlamaHeads, 4}));
    EXPECT_TRUE(c.tensors[6].transforms.empty());  // attn_v kept
    std::vector<std::string> keys;
    std::map<std::string, sf::formats::GgufValue> kv;
    for (const auto& k : c.arch_kvs) {
        keys.push_back(k.key);
        kv[k.key] = k.value;
    }
    // MmprojModel's keys, then LlavaVisionModel's in its order
    ASSERT_GE(keys.size(), 4u);
    EXPECT_EQ(std::vector<std::string>(keys.end() - 4, keys.end()),
              (std::vector<std::string>{"clip.projector_type", "clip.vision.attention.layer_norm_epsilon",
                                        "clip.use_silu", "clip.vision.spatial_merge_size"}));
    EXPECT_EQ(kv.at("clip.projector_type").str, "pixtral");
    EXPECT_EQ(kv.at("clip.vision.spatial_merge_size").as_u64(), 2u);
    EXPECT_EQ(kv.at("clip.vision.block_count").as_u64(), 3u);

    // a linear_N past the tower's block count has no name in the converter's map either
    const std::vector<sf::model::HfTensor> far = {
        {"multi_modal_projector.linear_3.weight", DType::BF16, {256, 256}, "m.safetensors"}};
    Error e = capture([&] { (void)sf::model::plan_mmproj_conversion(cfg, dir, far); });
    EXPECT_EQ(e.kind(), ErrorKind::BadInput);
    EXPECT_EQ(e.tensor(), "multi_modal_projector.linear_3.weight");
    // transformers >= 4.52's names (model.vision_tower.*) pass no filter: no projector; a token embedding outside
    // language_model.* (whose [IMG_BREAK] row the converter would extract) is refused
    const std::vector<sf::model::HfTensor> newer = {
        {"model.vision_tower.ln_pre.weight", DType::BF16, {64}, "m.safetensors"},
        {"model.language_model.embed_tokens.weight", DType::BF16, {640, 256}, "m.safetensors"}};
    EXPECT_TRUE(sf::model::plan_mmproj_conversion(cfg, dir, newer).tensors.empty());
    const std::vector<sf::model::HfTensor> embed = {
        {"model.embed_tokens.weight", DType::BF16, {640, 256}, "m.safetensors"}};
    e = capture([&] { (void)sf::model::plan_mmproj_conversion(cfg, dir, embed); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_EQ(e.tensor(), "model.embed_tokens.weight");
    // a vision_config that is not Pixtral's, and a hidden_act the converter does not take
    std::string other = config;
    other.replace(other.find("\"pixtral\""), 9, "\"siglip\"");
    e = capture([&] { (void)sf::model::plan_mmproj_conversion(parse(other), dir, ts); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("pixtral"), std::string::npos) << e.what();
    std::string act = config;
    act.replace(act.find("\"silu\""), 6, "\"relu\"");
    e = capture([&] { (void)sf::model::plan_mmproj_conversion(parse(act), dir, ts); });
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("hidden_act"), std::string::npos) << e.what();
    std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------- gemma3n
// llama.cpp's conversion/gemma.py Gemma3NModel on the text of a Gemma3nForConditionalGeneration checkpoint: the towers
// skipped, altup_projections / altup_unembed_projections .{0,1,2} stacked into one [3, H, H] tensor each (written when
// the third is visited), correct_output_scale renamed to .weight, the AltUp coefficients kept F32, no norm shift and
// no vocabulary trim; set_gguf_parameters after Gemma3Model's keys (expected values from gguf-py's constants.py names;
// the sparsity scales are torch.distributions.Normal(0, 1).icdf(p) on float32, as printed by torch 1.13).
namespace {
const char* gemma3n_text_config = R"("text_config": {"model_type": "gemma3n_text", "num_hidden_layers": 2,
    "hidden_size": 16, "intermediate_size": [32, 48], "num_attention_heads": 2, "num_key_value_heads": 1,
    "head_dim": 8, "max_position_embeddings": 32768, "rms_norm_eps": 1e-06, "sliding_window": 512,
    "final_logit_softcapping": 30.0, "num_kv_shared_layers": 1, "hidden_size_per_layer_input": 4,
    "layer_types": ["sliding_attention", "full_attention"], "altup_num_inputs": 4, "altup_active_idx": 0,
    "laurel_rank": 8, "activation_sparsity_pattern": [0.95, 0.0], "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0, "vocab_size": 32, "vocab_size_per_layer_input": 32})";

nlohmann::json gemma3n_causal(const std::function<void(nlohmann::json&)>& edit = {}) {
    auto j = nlohmann::json::parse(std::string(gemma3n_text_config).substr(15));
    j["architectures"] = {"Gemma3nForCausalLM"};
    if (edit) edit(j);
    return j;
}
}  // namespace

TEST(GgufConversion, Gemma3nTextOfTheConditionalGenerationCheckpoint) {
    const auto cfg = parse(std::string(R"({"architectures": ["Gemma3nForConditionalGeneration"],
        "model_type": "gemma3n", "vision_config": {"model_type": "gemma3n_vision"}, "audio_config": {"model_type": "gemma3n_audio"}, )") +
                           gemma3n_text_config + "}");
    const std::string M = "model.language_model.", L = M + "layers.0.";
    const GgufConversion c = sf::model::plan_gguf_conversion(cfg, {
        t("model.audio_tower.subsample_conv_projection.conv_0.conv.weight", {16, 1, 3, 3}),
        t("model.embed_audio.embedding_projection.weight", {16, 8}),
        t("model.embed_vision.embedding_projection.weight", {16, 8}),
        t(M + "altup_projections.0.weight", {16, 16}),
        t(M + "altup_projections.1.weight", {16, 16}),
        t(M + "altup_projections.2.weight", {16, 16}),
        t(M + "altup_unembed_projections.0.weight", {16, 16}),
        t(M + "altup_unembed_projections.1.weight", {16, 16}),
        t(M + "altup_unembed_projections.2.weight", {16, 16}),
        t(M + "embed_tokens.weight", {32, 16}),
        t(M + "embed_tokens_per_layer.weight", {32, 8}),
        t(L + "altup.correct_output_scale", {16}),
        t(L + "altup.correction_coefs.weight", {4, 4}),
        t(L + "altup.modality_router.weight", {4, 16}),
        t(L + "altup.prediction_coefs.weight", {16, 4}),
        t(L + "altup.router_norm.weight", {16}),
        t(L + "input_layernorm.weight", {16}),
        t(L + "laurel.linear_left.weight", {8, 16}),
        t(L + "laurel.linear_right.weight", {16, 8}),
        t(L + "laurel.post_laurel_norm.weight", {16}),
        t(L + "per_layer_input_gate.weight", {4, 16}),
        t(L + "per_layer_projection.weight", {16, 4}),
        t(L + "post_per_layer_input_norm.weight", {16}),
        t(L + "pre_feedforward_layernorm.weight", {16}),
        t(L + "self_attn.k_norm.weight", {8}),
        t(M + "per_layer_model_projection.weight", {8, 16}),
        t(M + "per_layer_projection_norm.weight", {4}),
        t("model.vision_tower.timm_model.conv_stem.conv.weight", {16, 3, 3, 3}),
    }, 32);
    EXPECT_EQ(c.arch, "gemma3n");
    expect_tensors(c, {
        {"altup_proj.weight", {3, 16, 16},
         src({"model.language_model.altup_projections.0.weight", "model.language_model.altup_projections.1.weight",
              "model.language_model.altup_projections.2.weight"})},
        {"altup_unembd_proj.weight", {3, 16, 16},
         src({"model.language_model.altup_unembed_projections.0.weight",
              "model.language_model.altup_unembed_projections.1.weight",
              "model.language_model.altup_unembed_projections.2.weight"})},
        {"token_embd.weight", {32, 16}, src({"model.language_model.embed_tokens.weight"})},
        {"per_layer_token_embd.weight", {32, 8}, src({"model.language_model.embed_tokens_per_layer.weight"})},
        {"blk.0.altup_correct_scale.weight", {16}, src({"model.language_model.layers.0.altup.correct_output_scale"}),
         {}, true},
        {"blk.0.altup_correct_coef.weight", {4, 4},
         src({"model.language_model.layers.0.altup.correction_coefs.weight"}), {}, true},
        {"blk.0.altup_router.weight", {4, 16}, src({"model.language_model.layers.0.altup.modality_router.weight"})},
        {"blk.0.altup_predict_coef.weight", {16, 4},
         src({"model.language_model.layers.0.altup.prediction_coefs.weight"}), {}, true},
        {"blk.0.altup_router_norm.weight", {16}, src({"model.language_model.layers.0.altup.router_norm.weight"}), {},
         true},
        {"blk.0.attn_norm.weight", {16}, src({"model.language_model.layers.0.input_layernorm.weight"}), {}, true},
        {"blk.0.laurel_l.weight", {8, 16}, src({"model.language_model.layers.0.laurel.linear_left.weight"})},
        {"blk.0.laurel_r.weight", {16, 8}, src({"model.language_model.layers.0.laurel.linear_right.weight"})},
        {"blk.0.laurel_post_norm.weight", {16}, src({"model.language_model.layers.0.laurel.post_laurel_norm.weight"}),
         {}, true},
        {"blk.0.inp_gate.weight", {4, 16}, src({"model.language_model.layers.0.per_layer_input_gate.weight"})},
        {"blk.0.proj.weight", {16, 4}, src({"model.language_model.layers.0.per_layer_projection.weight"})},
        {"blk.0.post_norm.weight", {16}, src({"model.language_model.layers.0.post_per_layer_input_norm.weight"}), {},
         true},
        {"blk.0.ffn_norm.weight", {16}, src({"model.language_model.layers.0.pre_feedforward_layernorm.weight"}), {},
         true},
        {"blk.0.attn_k_norm.weight", {8}, src({"model.language_model.layers.0.self_attn.k_norm.weight"}), {}, true},
        {"per_layer_model_proj.weight", {8, 16}, src({"model.language_model.per_layer_model_projection.weight"})},
        {"per_layer_proj_norm.weight", {4}, src({"model.language_model.per_layer_projection_norm.weight"}), {}, true},
    });
    EXPECT_EQ(c.dropped.size(), 4u);
    const float inf = std::numeric_limits<float>::infinity();
    expect_kvs(c.arch_kvs, {
        u32("gemma3n.block_count", 2), u32("gemma3n.context_length", 32768), u32("gemma3n.embedding_length", 16),
        {"gemma3n.feed_forward_length", GgufValue::arr_i32({32, 48})},  // a list: add_array of INT32
        u32("gemma3n.attention.head_count", 2), u32("gemma3n.attention.head_count_kv", 1),
        f32("gemma3n.rope.freq_base", 1e6f), f32("gemma3n.rope.freq_base_swa", 1e4f),
        f32("gemma3n.attention.layer_norm_rms_epsilon", 1e-6f), u32("gemma3n.attention.key_length", 8),
        u32("gemma3n.attention.value_length", 8), f32("gemma3n.final_logit_softcapping", 30.0f),
        u32("gemma3n.attention.sliding_window", 512), u32("gemma3n.altup.active_idx", 0),
        u32("gemma3n.altup.num_inputs", 4), u32("gemma3n.embedding_length_per_layer_input", 4),
        u32("gemma3n.attention.shared_kv_layers", 1),
        {"gemma3n.activation_sparsity_scale", GgufValue::arr_f32({1.6448533535003662f, -inf})},
        {"gemma3n.attention.sliding_window_pattern", GgufValue::arr_bool({true, false})},
    });
}

// Normal(0, 1).icdf as torch computes it in float32 (values printed by torch 1.13 for these float32 inputs).
TEST(GgufConversion, Gemma3nSparsityScalesAreTorchsFloat32Icdf) {
    const GgufConversion c = sf::model::plan_gguf_conversion(sf::model::parse_hf_config(gemma3n_causal([](auto& j) {
        j["num_hidden_layers"] = 5;
        j["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention",
                            "full_attention"};
        j["activation_sparsity_pattern"] = {0.9, 0.99, 0.999, 0.1, 0.5};
    })), {}, 32);
    const GgufKV* scales = nullptr;
    for (const GgufKV& kv : c.arch_kvs) {
        if (kv.key == "gemma3n.activation_sparsity_scale") scales = &kv;
    }
    ASSERT_NE(scales, nullptr);
    EXPECT_TRUE(scales->value == GgufValue::arr_f32({1.2815513610839844f, 2.326348304748535f, 3.090235948562622f,
                                                     -1.281551480293274f, 0.0f}));
}

TEST(GgufConversion, Gemma3nRefusals) {
    auto plan = [](const nlohmann::json& j, std::vector<HfTensor> ts = {}) {
        return capture([&] { (void)sf::model::plan_gguf_conversion(sf::model::parse_hf_config(j), ts, 32); });
    };
    // the converter asserts 4 AltUp inputs
    const Error e1 = plan(gemma3n_causal([](auto& j) { j["altup_num_inputs"] = 3; }));
    EXPECT_EQ(e1.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e1.what()).find("altup_num_inputs = 3"), std::string::npos) << e1.what();
    const Error e2 = plan(gemma3n_causal([](auto& j) { j.erase("activation_sparsity_pattern"); }));
    EXPECT_EQ(e2.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e2.what()).find("activation_sparsity_pattern"), std::string::npos) << e2.what();
    const Error e3 = plan(gemma3n_causal([](auto& j) { j["activation_sparsity_pattern"] = {0.95, 1.5}; }));
    EXPECT_NE(std::string(e3.what()).find("not a probability"), std::string::npos) << e3.what();
    const Error e4 = plan(gemma3n_causal([](auto& j) { j["altup_active_idx"] = 4; }));
    EXPECT_NE(std::string(e4.what()).find("altup_active_idx = 4"), std::string::npos) << e4.what();
    // google/gemma-3n-E2B stores embed_tokens_per_layer with vocab_size_per_layer_input (262144) rows, which the
    // converter pads with zeros to vocab_size: not implemented, refused
    const Error e5 = plan(gemma3n_causal(), {t("model.embed_tokens_per_layer.weight", {30, 8})});
    EXPECT_EQ(e5.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e5.what()).find("30 rows < vocab_size 32"), std::string::npos) << e5.what();
    // an incomplete AltUp stack (the converter would silently write a file llama.cpp cannot load)
    const Error e6 = plan(gemma3n_causal(), {t("model.altup_projections.0.weight", {16, 16}),
                                             t("model.altup_projections.1.weight", {16, 16})});
    EXPECT_EQ(e6.kind(), ErrorKind::BadInput);
    EXPECT_NE(std::string(e6.what()).find("2 of the 3 tensors stacked into 'model.altup_projections.weight'"),
              std::string::npos) << e6.what();
    const Error e7 = plan(gemma3n_causal(), {t("model.altup_projections.3.weight", {16, 16})});
    EXPECT_NE(std::string(e7.what()).find("altup_projections.{0,1,2}"), std::string::npos) << e7.what();
    // intermediate_size as a list: parsed (n_ff unknown), its entries checked
    EXPECT_EQ(sf::model::parse_hf_config(gemma3n_causal()).n_ff, 0);
    const Error e8 = plan(gemma3n_causal([](auto& j) { j["intermediate_size"] = {32, "x"}; }));
    EXPECT_NE(std::string(e8.what()).find("intermediate_size"), std::string::npos) << e8.what();
}
