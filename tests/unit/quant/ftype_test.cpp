// ftypes and per-tensor type rules. Expected values come from llama.cpp's src/llama-quant.cpp (ftype table, tensor
// order and use_more_bits sets, per-tensor rules) and observed llama-quantize --dry-run decisions, never from our code.
// The exhaustive comparison with the reference libllama is in ftype_oracle_test.cpp.
#include <shardforge/quant.hpp>

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::FType;
using sf::quant::GgmlType;
using sf::quant::ModelFacts;
using sf::quant::Overrides;
using sf::quant::QuantTensor;

namespace {

std::string blk(int i, const char* s) { return "blk." + std::to_string(i) + "." + s; }

void add(std::vector<QuantTensor>& v, std::string name, std::vector<std::int64_t> ne) {
    v.push_back({std::move(name), ne, ne.size() == 1 ? GgmlType::F32 : GgmlType::F16});
}

struct Llama {
    int n_layer = 16, n_embd = 256, n_ff = 320, n_head = 4, n_head_kv = 1, n_vocab = 32, n_expert = 0;
    bool tied = false;
};

std::vector<QuantTensor> llama_tensors(const Llama& s) {
    std::vector<QuantTensor> v;
    const int kv = s.n_embd / s.n_head * s.n_head_kv;
    add(v, "token_embd.weight", {s.n_embd, s.n_vocab});
    for (int i = 0; i < s.n_layer; ++i) {
        add(v, blk(i, "attn_norm.weight"), {s.n_embd});
        add(v, blk(i, "attn_q.weight"), {s.n_embd, s.n_embd});
        add(v, blk(i, "attn_k.weight"), {s.n_embd, kv});
        add(v, blk(i, "attn_v.weight"), {s.n_embd, kv});
        add(v, blk(i, "attn_output.weight"), {s.n_embd, s.n_embd});
        add(v, blk(i, "ffn_norm.weight"), {s.n_embd});
        if (s.n_expert > 1) {
            add(v, blk(i, "ffn_gate_inp.weight"), {s.n_embd, s.n_expert});
            add(v, blk(i, "ffn_gate_exps.weight"), {s.n_embd, s.n_ff, s.n_expert});
            add(v, blk(i, "ffn_up_exps.weight"), {s.n_embd, s.n_ff, s.n_expert});
            add(v, blk(i, "ffn_down_exps.weight"), {s.n_ff, s.n_embd, s.n_expert});
        } else {
            add(v, blk(i, "ffn_gate.weight"), {s.n_embd, s.n_ff});
            add(v, blk(i, "ffn_up.weight"), {s.n_embd, s.n_ff});
            add(v, blk(i, "ffn_down.weight"), {s.n_ff, s.n_embd});
        }
    }
    add(v, "output_norm.weight", {s.n_embd});
    if (!s.tied) add(v, "output.weight", {s.n_embd, s.n_vocab});
    return v;
}

ModelFacts facts(const Llama& s) { return {"llama", s.n_layer, s.n_head, s.n_head_kv, s.n_expert}; }

struct Result {
    std::map<std::string, std::string> type;   // name -> ggml type name
    std::string row(const char* what, int n_layer) const {   // "q6_K q6_K q4_K ..." over layers
        std::string s;
        for (int i = 0; i < n_layer; ++i) {
            const auto it = type.find(blk(i, what));
            s += (i ? " " : "") + (it == type.end() ? std::string("?") : it->second);
        }
        return s;
    }
    std::set<std::string> all(const char* what, int n_layer) const {
        std::set<std::string> r;
        for (int i = 0; i < n_layer; ++i) r.insert(type.at(blk(i, what)));
        return r;
    }
};

Result run(const Llama& s, FType f, const Overrides& ov = {}) {
    const auto ts = llama_tensors(s);
    const auto ch = sf::quant::choose_types(ts, facts(s), f, ov);
    Result r;
    for (std::size_t i = 0; i < ts.size(); ++i) r.type[ts[i].name] = std::string(sf::quant::traits(ch[i].type).name);
    return r;
}

std::string repeat(const std::string& t, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (i ? " " : "") + t;
    return s;
}

// Row over layers: `hi` on the layers in `set`, else `lo`.
std::string on_layers(const std::set<int>& set, const std::string& hi, const std::string& lo, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += (i ? " " : "") + (set.count(i) ? hi : lo);
    return s;
}

// ---------------------------------------------------------------- ftype table

TEST(FType, TableMatchesSpec) {
    struct Row { const char* name; std::uint32_t id; GgmlType def; };
    const Row rows[] = {
        {"F32", 0, GgmlType::F32},         {"F16", 1, GgmlType::F16},         {"Q4_0", 2, GgmlType::Q4_0},
        {"Q4_1", 3, GgmlType::Q4_1},       {"Q8_0", 7, GgmlType::Q8_0},       {"Q5_0", 8, GgmlType::Q5_0},
        {"Q5_1", 9, GgmlType::Q5_1},       {"Q2_K", 10, GgmlType::Q2_K},      {"Q3_K_S", 11, GgmlType::Q3_K},
        {"Q3_K_M", 12, GgmlType::Q3_K},    {"Q3_K", 12, GgmlType::Q3_K},      {"Q3_K_L", 13, GgmlType::Q3_K},
        {"Q4_K_S", 14, GgmlType::Q4_K},    {"Q4_K_M", 15, GgmlType::Q4_K},    {"Q4_K", 15, GgmlType::Q4_K},
        {"Q5_K_S", 16, GgmlType::Q5_K},    {"Q5_K_M", 17, GgmlType::Q5_K},    {"Q5_K", 17, GgmlType::Q5_K},
        {"Q6_K", 18, GgmlType::Q6_K},      {"IQ2_XXS", 19, GgmlType::IQ2_XXS}, {"IQ2_XS", 20, GgmlType::IQ2_XS},
        {"Q2_K_S", 21, GgmlType::Q2_K},    {"IQ3_XS", 22, GgmlType::IQ3_S},   {"IQ3_XXS", 23, GgmlType::IQ3_XXS},
        {"IQ1_S", 24, GgmlType::IQ1_S},    {"IQ4_NL", 25, GgmlType::IQ4_NL},  {"IQ3_S", 26, GgmlType::IQ3_S},
        {"IQ3_M", 27, GgmlType::IQ3_S},    {"IQ2_S", 28, GgmlType::IQ2_XS},   {"IQ2_M", 29, GgmlType::IQ2_S},
        {"IQ4_XS", 30, GgmlType::IQ4_XS},  {"IQ1_M", 31, GgmlType::IQ1_M},    {"BF16", 32, GgmlType::BF16},
        {"TQ1_0", 36, GgmlType::TQ1_0},    {"TQ2_0", 37, GgmlType::TQ2_0},    {"MXFP4_MOE", 38, GgmlType::MXFP4},
        {"COPY", 0, GgmlType::F32},
    };
    for (const auto& r : rows) {
        const auto* info = sf::quant::find_ftype(r.name);
        ASSERT_NE(info, nullptr) << r.name;
        EXPECT_EQ(static_cast<std::uint32_t>(info->ftype), r.id) << r.name;
        EXPECT_EQ(info->default_type, r.def) << r.name;
        EXPECT_FALSE(info->description.empty()) << r.name;
    }
    EXPECT_EQ(sf::quant::ftype_table().size(), std::size(rows) + 1);  // + Unsloth's Q2_K_L
    EXPECT_EQ(sf::quant::ftype_long_name(FType::Q4_K_M), "Q4_K - Medium");
    EXPECT_EQ(sf::quant::ftype_long_name(FType::F32), "all F32");
    EXPECT_EQ(sf::quant::ftype_long_name(FType::Q2_K), "Q2_K - Medium");
    EXPECT_EQ(sf::quant::ftype_info(FType::Q4_K_M).name, "Q4_K_M");
    EXPECT_EQ(sf::quant::ftype_info(FType::F32).name, "F32");
}

TEST(FType, ParseIsCaseInsensitiveAndAcceptsIds) {
    FType f{};
    for (const char* s : {"q4_k_m", "Q4_K_M", "q4_K_M", "Q4_k_m", "Q4_K", "q4_k", "15"}) {
        ASSERT_TRUE(sf::quant::parse_ftype(s, f)) << s;
        EXPECT_EQ(f, FType::Q4_K_M) << s;
    }
    ASSERT_TRUE(sf::quant::parse_ftype("mxfp4_moe", f));
    EXPECT_EQ(f, FType::MXFP4_MOE);
    EXPECT_EQ(sf::quant::find_ftype("0")->name, "F32");  // F32 comes before COPY
    EXPECT_FALSE(sf::quant::find_ftype("0")->only_copy);
    EXPECT_TRUE(sf::quant::find_ftype("copy")->only_copy);
    for (const char* s : {"", "q4_k_x", "Q4", "q4_k_m ", "4.5", "5", "99", "-15"}) EXPECT_FALSE(sf::quant::parse_ftype(s, f)) << s;
    const auto* q2kl = sf::quant::find_ftype("q2_k_l");
    ASSERT_NE(q2kl, nullptr);
    EXPECT_EQ(q2kl->ftype, FType::Q2_K);
    EXPECT_EQ(q2kl->preset_output_type, GgmlType::Q8_0);
    EXPECT_EQ(q2kl->preset_token_embd_type, GgmlType::Q8_0);
}

TEST(FType, ImatrixOnlyFtypes) {
    for (const char* s : {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS", "IQ1_S", "IQ1_M", "Q2_K_S"})
        EXPECT_TRUE(sf::quant::find_ftype(s)->needs_imatrix) << s;
    for (const char* s : {"Q2_K", "Q4_K_M", "IQ4_XS", "IQ4_NL", "IQ3_S", "IQ3_M", "Q8_0", "TQ1_0", "F16"})
        EXPECT_FALSE(sf::quant::find_ftype(s)->needs_imatrix) << s;
    // per tensor: IQ targets need one, except token_embd/output; Q2_K only inside Q2_K_S
    Llama s;
    s.n_ff = 512;
    const auto ts = llama_tensors(s);
    for (FType f : {FType::IQ2_XXS, FType::Q2_K_S, FType::Q2_K}) {
        const auto ch = sf::quant::choose_types(ts, facts(s), f, {});
        for (std::size_t i = 0; i < ts.size(); ++i) {
            if (ts[i].name == "blk.5.attn_q.weight") {
                EXPECT_EQ(ch[i].requires_imatrix, f != FType::Q2_K) << ch[i].rule;
            }
            if (ts[i].name == "token_embd.weight" || ts[i].name == "output.weight") {
                EXPECT_FALSE(ch[i].requires_imatrix);
            }
        }
    }
}

TEST(FType, TensorTypeOverrideParsing) {
    sf::quant::TensorTypeOverride o;
    ASSERT_TRUE(sf::quant::parse_tensor_type_override("ATTN_Q=Q8_0", o));
    EXPECT_EQ(o.pattern, "attn_q");
    EXPECT_EQ(o.type, GgmlType::Q8_0);
    ASSERT_TRUE(sf::quant::parse_tensor_type_override("blk\\.1\\.ffn_down=q4_k", o));
    EXPECT_EQ(o.type, GgmlType::Q4_K);
    for (const char* bad : {"=q8_0", "attn_q=", "attn_q", "attn_q=q9_9"})
        EXPECT_FALSE(sf::quant::parse_tensor_type_override(bad, o)) << bad;
}

// ---------------------------------------------------------------- which tensors are quantized, tensor order

TEST(FType, WhichTensorsAreQuantized) {
    Overrides ov;
    auto allows = [&](std::string n, std::vector<std::int64_t> ne) {
        return sf::quant::tensor_allows_quantization({std::move(n), std::move(ne), GgmlType::F16}, ov, false);
    };
    EXPECT_TRUE(allows("blk.0.attn_q.weight", {256, 256}));
    EXPECT_FALSE(allows("blk.0.attn_norm.weight", {256}));
    EXPECT_FALSE(allows("blk.0.attn_q.bias", {256}));
    EXPECT_FALSE(allows("blk.0.attn_q_norm.weight", {128, 1}));  // 1-D in ggml's sense
    EXPECT_FALSE(allows("blk.0.ffn_gate_inp.weight", {256, 8}));
    EXPECT_FALSE(allows("position_embd.weight", {256, 1024}));
    EXPECT_FALSE(allows("token_types.weight", {256, 2}));
    EXPECT_FALSE(allows("blk.0.ssm_conv1d.weight", {4, 256}));
    EXPECT_FALSE(allows("blk.0.attn_rel_b.weight", {8, 32}));
    EXPECT_TRUE(allows("blk.0.ffn_down_exps.weight", {512, 256, 8}));
    EXPECT_TRUE(allows("output.weight", {256, 32}));
    ov.leave_output = true;
    EXPECT_FALSE(allows("output.weight", {256, 32}));
    EXPECT_FALSE(sf::quant::tensor_allows_quantization({"blk.0.attn_q.weight", {256, 256}, GgmlType::F16}, {}, true));
}

TEST(FType, QuantizeOrderIsWeightsMapOrder) {
    std::vector<QuantTensor> ts;
    for (const char* n : {"token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_k.weight", "blk.10.attn_k.weight",
                          "blk.2.ffn_up.weight", "blk.1.attn_v.weight", "output_norm.weight", "output.weight"})
        ts.push_back({n, {256, 256}, GgmlType::F16});
    std::vector<std::string> got;
    for (auto i : sf::quant::quantize_order(ts)) got.push_back(ts[i].name);
    const std::vector<std::string> want = {"output.weight", "output_norm.weight", "token_embd.weight",
                                           "blk.0.attn_k.weight", "blk.0.attn_norm.weight", "blk.1.attn_v.weight",
                                           "blk.2.ffn_up.weight", "blk.10.attn_k.weight"};
    EXPECT_EQ(got, want);
}

// Counters follow the sorted order, not the order tensors are handed in: a shuffled list gives the same types.
TEST(FType, CountersUseSortedOrderNotInputOrder) {
    Llama s;
    s.n_ff = 512;
    auto ts = llama_tensors(s);
    std::vector<QuantTensor> rev(ts.rbegin(), ts.rend());
    const auto a = sf::quant::choose_types(ts, facts(s), FType::Q4_K_M, {});
    const auto b = sf::quant::choose_types(rev, facts(s), FType::Q4_K_M, {});
    for (std::size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(a[i].type, b[ts.size() - 1 - i].type) << ts[i].name;
}

// ---------------------------------------------------------------- Appendix C (16 layers, n_gqa 4, n_ff 320)

const std::set<int> more_bits_16 = {0, 1, 4, 7, 10, 13, 14, 15};

TEST(FTypeAppendixC, Q4_K_M) {
    Llama s;
    auto r = run(s, FType::Q4_K_M);
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    EXPECT_EQ(r.type["token_embd.weight"], "q4_K");
    EXPECT_EQ(r.row("attn_v.weight", 16),
              "q6_K q6_K q4_K q4_K q6_K q4_K q4_K q6_K q4_K q4_K q6_K q4_K q4_K q6_K q6_K q6_K");
    EXPECT_EQ(r.row("ffn_down.weight", 16),
              "q8_0 q8_0 q5_0 q5_0 q8_0 q5_0 q5_0 q8_0 q5_0 q5_0 q8_0 q5_0 q5_0 q8_0 q8_0 q8_0");
    for (const char* t : {"attn_q.weight", "attn_k.weight", "attn_output.weight", "ffn_gate.weight", "ffn_up.weight"})
        EXPECT_EQ(r.all(t, 16), std::set<std::string>{"q4_K"}) << t;
    EXPECT_EQ(r.all("attn_norm.weight", 16), std::set<std::string>{"f32"});
    EXPECT_EQ(r.type["output_norm.weight"], "f32");
    s.tied = true;
    EXPECT_EQ(run(s, FType::Q4_K_M).type["token_embd.weight"], "q6_K");
}

TEST(FTypeAppendixC, Q4_K_S_Q5_K_M_Q3_K_M_Q3_K_L) {
    Llama s;
    auto r = run(s, FType::Q4_K_S);
    EXPECT_EQ(r.row("attn_v.weight", 16), on_layers({0, 1, 2, 3}, "q5_K", "q4_K", 16));
    EXPECT_EQ(r.row("ffn_down.weight", 16), on_layers({0, 1}, "q5_1", "q5_0", 16));
    r = run(s, FType::Q5_K_M);
    EXPECT_EQ(r.row("attn_v.weight", 16), on_layers(more_bits_16, "q6_K", "q5_K", 16));
    EXPECT_EQ(r.row("ffn_down.weight", 16), on_layers(more_bits_16, "q8_0", "q5_1", 16));
    r = run(s, FType::Q3_K_M);
    EXPECT_EQ(r.row("attn_v.weight", 16), on_layers({0, 1}, "q5_K", "q4_K", 16));
    EXPECT_EQ(r.row("attn_output.weight", 16), repeat("q4_K", 16));
    EXPECT_EQ(r.row("ffn_down.weight", 16), on_layers({0}, "q5_1", "q5_0", 16));
    r = run(s, FType::Q3_K_L);
    EXPECT_EQ(r.row("attn_v.weight", 16), repeat("q5_K", 16));
    EXPECT_EQ(r.row("attn_output.weight", 16), repeat("q5_K", 16));
    EXPECT_EQ(r.row("ffn_down.weight", 16), repeat("q5_1", 16));
}

TEST(FTypeAppendixC, Q3_K_S_Q2_K_Q4_0) {
    Llama s;
    auto r = run(s, FType::Q3_K_S);
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    EXPECT_EQ(r.row("ffn_down.weight", 16), repeat("q4_0", 16));
    for (const char* t : {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "ffn_up.weight"})
        EXPECT_EQ(r.all(t, 16), std::set<std::string>{"q3_K"}) << t;
    EXPECT_EQ(r.type["token_embd.weight"], "q3_K");
    r = run(s, FType::Q2_K);
    EXPECT_EQ(r.row("attn_v.weight", 16), repeat("q4_K", 16));
    EXPECT_EQ(r.row("attn_output.weight", 16), repeat("q3_K", 16));
    EXPECT_EQ(r.row("ffn_down.weight", 16), repeat("q4_0", 16));
    EXPECT_EQ(r.row("attn_q.weight", 16), repeat("q2_K", 16));
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    r = run(s, FType::Q4_0);
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    EXPECT_EQ(r.type["token_embd.weight"], "q4_0");
    for (const char* t : {"attn_v.weight", "ffn_down.weight", "attn_q.weight"})
        EXPECT_EQ(r.all(t, 16), std::set<std::string>{"q4_0"}) << t;
    s.tied = true;
    EXPECT_EQ(run(s, FType::Q4_0).type["token_embd.weight"], "q6_K");
}

TEST(FTypeAppendixC, Q6_K_Q8_0_IQ4_XS_F16) {
    Llama s;
    auto r = run(s, FType::Q6_K);
    EXPECT_EQ(r.row("ffn_down.weight", 16), repeat("q8_0", 16));
    EXPECT_EQ(r.row("attn_v.weight", 16), repeat("q6_K", 16));
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    r = run(s, FType::Q8_0);
    EXPECT_EQ(r.type["output.weight"], "q8_0");
    EXPECT_EQ(r.type["token_embd.weight"], "q8_0");
    EXPECT_EQ(r.row("ffn_down.weight", 16), repeat("q8_0", 16));
    r = run(s, FType::IQ4_XS);
    EXPECT_EQ(r.row("attn_v.weight", 16), repeat("q5_K", 16));
    EXPECT_EQ(r.row("ffn_down.weight", 16), on_layers({0, 1}, "q5_1", "iq4_nl", 16));
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    r = run(s, FType::F16);
    EXPECT_EQ(r.type["output.weight"], "f16");
    EXPECT_EQ(r.type["token_embd.weight"], "f16");
    EXPECT_EQ(r.row("ffn_down.weight", 16), repeat("f16", 16));
    EXPECT_EQ(r.type["output_norm.weight"], "f32");
}

// ---------------------------------------------------------------- use_more_bits on real sizes

TEST(FType, Llama3_8B_Q4_K_M_UsesMoreBitsOnSpecLayers) {
    Llama s{32, 4096, 14336, 32, 8, 128256, 0, false};
    const std::set<int> n32 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    auto r = run(s, FType::Q4_K_M);
    EXPECT_EQ(r.row("attn_v.weight", 32), on_layers(n32, "q6_K", "q4_K", 32));
    EXPECT_EQ(r.row("ffn_down.weight", 32), on_layers(n32, "q6_K", "q4_K", 32));
    EXPECT_EQ(r.type["output.weight"], "q6_K");
    EXPECT_EQ(r.type["token_embd.weight"], "q4_K");
    Llama s28{28, 3072, 8192, 24, 8, 128256, 0, true};
    const std::set<int> n28 = {0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
    r = run(s28, FType::Q5_K_M);
    EXPECT_EQ(r.row("attn_v.weight", 28), on_layers(n28, "q6_K", "q5_K", 28));
    EXPECT_EQ(r.type["token_embd.weight"], "q6_K");  // tied
}

// ---------------------------------------------------------------- MoE / 70B, fallbacks and overrides

TEST(FType, MixtralEightExperts) {
    Llama s{32, 4096, 14336, 32, 8, 32000, 8, false};
    auto r = run(s, FType::Q4_K_M);
    EXPECT_EQ(r.row("attn_v.weight", 32), repeat("q8_0", 32));
    EXPECT_EQ(r.row("attn_k.weight", 32), repeat("q8_0", 32));
    EXPECT_EQ(r.row("attn_output.weight", 32), repeat("q5_K", 32));
    const std::set<int> n32 = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    EXPECT_EQ(r.row("ffn_down_exps.weight", 32), on_layers(n32, "q6_K", "q4_K", 32));
    EXPECT_EQ(r.row("ffn_gate_inp.weight", 32), repeat("f16", 32));  // kept as stored
    r = run(s, FType::MXFP4_MOE);
    EXPECT_EQ(r.type["output.weight"], "q8_0");
    EXPECT_EQ(r.row("ffn_up_exps.weight", 32), repeat("mxfp4", 32));
    EXPECT_EQ(r.row("attn_q.weight", 32), repeat("q8_0", 32));
}

TEST(FType, Llama70BAttnV) {
    Llama s{80, 8192, 28672, 64, 8, 128256, 0, false};
    EXPECT_TRUE(sf::quant::is_type_70b(facts(s)));
    auto r = run(s, FType::Q3_K_S);  // attn_v default q3_K -> q5_K on 70B
    EXPECT_EQ(r.all("attn_v.weight", 80), std::set<std::string>{"q5_K"});
    s.n_head_kv = 64;
    EXPECT_FALSE(sf::quant::is_type_70b(facts(s)));
}

TEST(FType, FallbackChain) {
    // one tensor, forced with --tensor-type, row length 96 (multiple of 32, not 256) and 40 (not of 32)
    auto one = [](GgmlType t, std::int64_t ne0) {
        std::vector<QuantTensor> ts = {{"blk.0.attn_q.weight", {ne0, 64}, GgmlType::F16}};
        Overrides ov;
        ov.tensor_types = {{"attn_q", t}};
        const auto ch = sf::quant::choose_types(ts, {"llama", 1, 4, 4, 0}, FType::Q4_K_M, ov);
        return ch[0];
    };
    const std::pair<GgmlType, GgmlType> chain[] = {
        {GgmlType::IQ1_S, GgmlType::IQ4_NL},  {GgmlType::IQ1_M, GgmlType::IQ4_NL},  {GgmlType::IQ2_XXS, GgmlType::IQ4_NL},
        {GgmlType::IQ2_XS, GgmlType::IQ4_NL}, {GgmlType::IQ2_S, GgmlType::IQ4_NL},  {GgmlType::IQ3_XXS, GgmlType::IQ4_NL},
        {GgmlType::IQ3_S, GgmlType::IQ4_NL},  {GgmlType::IQ4_XS, GgmlType::IQ4_NL}, {GgmlType::Q2_K, GgmlType::Q4_0},
        {GgmlType::Q3_K, GgmlType::Q4_0},     {GgmlType::TQ1_0, GgmlType::Q4_0},    {GgmlType::TQ2_0, GgmlType::Q4_0},
        {GgmlType::Q4_K, GgmlType::Q5_0},     {GgmlType::Q5_K, GgmlType::Q5_1},     {GgmlType::Q6_K, GgmlType::Q8_0},
        {GgmlType::Q8_0, GgmlType::Q8_0},     {GgmlType::Q4_0, GgmlType::Q4_0},     {GgmlType::IQ4_NL, GgmlType::IQ4_NL},
    };
    for (const auto& [from, to] : chain) {
        const auto c = one(from, 96);
        EXPECT_EQ(c.type, to) << sf::quant::traits(from).name << ": " << c.rule;
        EXPECT_EQ(c.fallback, from != to);
        EXPECT_EQ(one(from, 40).type, GgmlType::F16) << sf::quant::traits(from).name;
        EXPECT_EQ(one(from, 512).type, from);
    }
}

TEST(FType, Overrides) {
    Llama s;
    s.n_embd = 96;  // output/token_embd rows not a multiple of 256
    s.n_head = 4;
    Overrides ov;
    ov.output_type = GgmlType::Q4_K;        // returns early: no fallback even though 96 % 256 != 0
    ov.token_embd_type = GgmlType::Q2_K;
    auto r = run(s, FType::Q4_K_M, ov);
    EXPECT_EQ(r.type["output.weight"], "q4_K");
    EXPECT_EQ(r.type["token_embd.weight"], "q2_K");
    // without the override: nx % 256 != 0 -> q8_0 for output (rule 1)
    r = run(s, FType::Q4_K_M);
    EXPECT_EQ(r.type["output.weight"], "q8_0");

    Llama d;
    d.n_ff = 512;
    ov = {};
    ov.tensor_types = {{"blk\\.1\\.", GgmlType::Q8_0}, {"attn_v", GgmlType::Q5_K}};  // first match wins
    r = run(d, FType::Q4_K_M, ov);
    EXPECT_EQ(r.type["blk.1.attn_v.weight"], "q8_0");
    EXPECT_EQ(r.type["blk.2.attn_v.weight"], "q5_K");
    EXPECT_EQ(r.type["blk.1.attn_q.weight"], "q8_0");
    EXPECT_EQ(r.type["blk.1.attn_norm.weight"], "f32");  // not quantizable: pattern ignored
    ov = {};
    ov.pure = true;
    r = run(d, FType::Q4_K_M, ov);
    EXPECT_EQ(r.type["output.weight"], "q4_K");
    EXPECT_EQ(r.row("attn_v.weight", 16), repeat("q4_K", 16));
    ov = {};
    ov.leave_output = true;
    r = run(d, FType::Q4_K_M, ov);
    EXPECT_EQ(r.type["output.weight"], "f16");
    EXPECT_EQ(r.type["token_embd.weight"], "q4_K");  // still untied: output.weight exists
    // Unsloth's Q2_K_L
    ov = {};
    sf::quant::apply_preset(*sf::quant::find_ftype("Q2_K_L"), ov);
    r = run(d, FType::Q2_K, ov);
    EXPECT_EQ(r.type["output.weight"], "q8_0");
    EXPECT_EQ(r.type["token_embd.weight"], "q8_0");
    EXPECT_EQ(r.type["blk.3.attn_q.weight"], "q2_K");
}

TEST(FType, MoeWithoutLayerNumberIsAnError) {
    std::vector<QuantTensor> ts = {{"ffn_down_exps.weight", {512, 256, 8}, GgmlType::F16}};
    EXPECT_THROW((void)sf::quant::choose_types(ts, {"llama", 2, 4, 4, 8}, FType::Q4_K_M, {}), sf::core::Error);
    ts[0].name = "blk.7.ffn_down_exps.weight";  // layer outside [0, 2)
    EXPECT_THROW((void)sf::quant::choose_types(ts, {"llama", 2, 4, 4, 8}, FType::Q4_K_M, {}), sf::core::Error);
}

}  // namespace

namespace {

// The rules that look at --imatrix (the oracle hook cannot: it always runs without one).
TEST(FType, ImatrixDependentRules) {
    Llama s;
    s.n_ff = 512;
    s.n_head_kv = 4;  // n_gqa 1
    Overrides with;
    with.has_imatrix = true;
    auto r0 = run(s, FType::IQ3_XXS);
    auto r1 = run(s, FType::IQ3_XXS, with);
    EXPECT_EQ(r0.row("attn_v.weight", 16), repeat("iq3_s", 16));
    EXPECT_EQ(r1.row("attn_v.weight", 16), repeat("iq3_xxs", 16));
    EXPECT_EQ(r0.row("ffn_down.weight", 16), on_layers({0, 1}, "q4_K", "q3_K", 16));
    EXPECT_EQ(r1.row("ffn_down.weight", 16), repeat("iq3_xxs", 16));
    EXPECT_EQ(run(s, FType::Q4_0).row("ffn_down.weight", 16), repeat("q4_0", 16));
    EXPECT_EQ(run(s, FType::Q4_0, with).row("ffn_down.weight", 16), on_layers({0, 1}, "q4_1", "q4_0", 16));
    EXPECT_EQ(run(s, FType::Q5_0, with).row("ffn_down.weight", 16), on_layers({0, 1}, "q5_1", "q5_0", 16));
    EXPECT_EQ(run(s, FType::IQ4_XS).row("ffn_down.weight", 16), on_layers({0, 1}, "q5_K", "iq4_xs", 16));
    EXPECT_EQ(run(s, FType::IQ4_XS, with).row("ffn_down.weight", 16), repeat("iq4_xs", 16));
}

}  // namespace
