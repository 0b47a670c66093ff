// Unit tests for lora: config parsing, pattern rule, --adapter parsing, JSON round trip, and the merge math on
// hand-computed examples (expected values derived by hand in the comments, not from the code).
#include <shardforge/lora.hpp>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace sf = shardforge;
using sf::lora::MergeTarget;
using sf::lora::Term;
using sf::lora::TermKind;
using sf::lora::TensorRef;

namespace {
sf::core::ErrorKind kind_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const sf::core::Error& e) {
        return e.kind();
    }
    return sf::core::ErrorKind::Internal;
}

TensorRef tref(const std::string& key, sf::core::Shape s) { return TensorRef{0, "adapter_model.safetensors", key, std::move(s)}; }
}  // namespace

TEST(LoraConfig, ToleratesUnknownKeysAndReadsFields) {
    const auto c = sf::lora::parse_adapter_config(
        R"({"peft_type":"LORA","r":16,"lora_alpha":22.627416997969522,"use_rslora":true,"new_field":{"x":1},
            "rank_pattern":{"z":1,"a":2},"alpha_pattern":{"q":3.5},"fan_in_fan_out":true,"modules_to_save":null,
            "init_lora_weights":"gaussian","target_parameters":["experts.down_proj"]})",
        "adapter_config.json");
    EXPECT_EQ(c.r, 16);
    EXPECT_DOUBLE_EQ(c.lora_alpha, 22.627416997969522);
    EXPECT_TRUE(c.use_rslora);
    EXPECT_TRUE(c.fan_in_fan_out);
    ASSERT_EQ(c.rank_pattern.size(), 2u);
    EXPECT_EQ(c.rank_pattern[0].first, "z");  // JSON order, not sorted
    EXPECT_EQ(c.rank_pattern[1].first, "a");
    ASSERT_EQ(c.target_parameters.size(), 1u);
}

TEST(LoraConfig, RefusesVariants) {
    using K = sf::core::ErrorKind;
    auto parse = [](const char* j) { return [j] { (void)sf::lora::parse_adapter_config(j, "cfg.json"); }; };
    EXPECT_EQ(kind_of(parse(R"({"init_lora_weights":"olora"})")), K::Unsupported);
    EXPECT_EQ(kind_of(parse(R"({"init_lora_weights":"corda"})")), K::Unsupported);
    EXPECT_EQ(kind_of(parse(R"({"init_lora_weights":"lora_ga"})")), K::Unsupported);
    EXPECT_EQ(kind_of(parse(R"({"use_bdlora":true})")), K::Unsupported);
    EXPECT_EQ(kind_of(parse(R"({"kasa_config":{"a":1}})")), K::Unsupported);
    EXPECT_EQ(kind_of(parse(R"({"peft_type":"LOHA"})")), K::Unsupported);
    EXPECT_EQ(kind_of(parse(R"({"r":0})")), K::BadInput);
    EXPECT_EQ(kind_of(parse(R"({"r":"8"})")), K::BadInput);
    EXPECT_EQ(kind_of(parse(R"({"r":1e67})")), K::BadInput);   // a whole float beyond int64: refused, no UB
    EXPECT_EQ(kind_of(parse(R"({"r":-1e300})")), K::BadInput);
    EXPECT_EQ(sf::lora::parse_adapter_config(R"({"r":16.0})", "cfg.json").r, 16);
    EXPECT_EQ(kind_of(parse(R"([1,2])")), K::BadInput);
    EXPECT_EQ(kind_of(parse(R"({"init_lora_weights":"mica","alora_invocation_tokens":null,"use_qalora":false})")),
              K::Internal);  // accepted: mica merges like LoRA, null/false variant fields are off
}

TEST(LoraPattern, PeftRule) {
    // (.*\.)?(key)$ anchored at the start: a dot (or nothing) must precede the key.
    EXPECT_TRUE(sf::lora::pattern_matches("q_proj", "model.layers.0.self_attn.q_proj"));
    EXPECT_TRUE(sf::lora::pattern_matches("q_proj", "q_proj"));
    EXPECT_FALSE(sf::lora::pattern_matches("_proj", "model.layers.0.self_attn.q_proj"));
    EXPECT_FALSE(sf::lora::pattern_matches("proj", "model.layers.0.self_attn.q_proj"));
    EXPECT_FALSE(sf::lora::pattern_matches("q_proj", "model.layers.0.self_attn.q_proj.x"));
    EXPECT_TRUE(sf::lora::pattern_matches("layers\\.1\\..*_proj", "model.layers.1.mlp.up_proj"));
    EXPECT_FALSE(sf::lora::pattern_matches("layers\\.1\\..*_proj", "model.layers.11.mlp.up_proj"));
    sf::lora::AdapterConfig c;
    c.r = 8;
    c.lora_alpha = 16;
    c.rank_pattern = {{"q_proj", 4}, {"layers\\.0\\.self_attn\\.q_proj", 2}};
    c.alpha_pattern = {{"v_proj", 3}};
    const auto s = sf::lora::module_scale(c, "model.layers.0.self_attn.q_proj");
    EXPECT_EQ(s.r, 4);  // first key in order wins
    EXPECT_EQ(s.scaling, 4.0);  // 16 / 4
    const auto v = sf::lora::module_scale(c, "model.layers.0.self_attn.v_proj");
    EXPECT_EQ(v.r, 8);
    EXPECT_EQ(v.scaling, 3.0 / 8.0);
    c.use_rslora = true;
    EXPECT_EQ(sf::lora::module_scale(c, "model.layers.0.self_attn.q_proj").scaling, 8.0);  // 16 / sqrt(4)
}

TEST(LoraArgs, AdapterWeight) {
    auto [d1, w1] = sf::lora::parse_adapter_arg("out/ad");
    EXPECT_EQ(d1, "out/ad");
    EXPECT_EQ(w1, 1.0);
    auto [d2, w2] = sf::lora::parse_adapter_arg("out/ad:0.25");
    EXPECT_EQ(d2, "out/ad");
    EXPECT_EQ(w2, 0.25);
    auto [d3, w3] = sf::lora::parse_adapter_arg("c:/x:-1e-1");
    EXPECT_EQ(d3, "c:/x");
    EXPECT_EQ(w3, -0.1);
    auto [d4, w4] = sf::lora::parse_adapter_arg("host:dir");
    EXPECT_EQ(d4, "host:dir");
    EXPECT_EQ(w4, 1.0);
    EXPECT_EQ(kind_of([] { (void)sf::lora::parse_adapter_arg(":2"); }), sf::core::ErrorKind::Usage);
    EXPECT_EQ(kind_of([] { (void)sf::lora::parse_adapter_arg("d:inf"); }), sf::core::ErrorKind::Usage);
}

TEST(LoraMath, LinearAndFanInFanOut) {
    // A = [[1, 2, 3]] (r=1, in=3), B = [[1], [2]] (out=2): B@A = [[1,2,3],[2,4,6]], s = 0.5.
    const std::vector<float> A{1, 2, 3}, B{1, 2};
    auto load = [&](const TensorRef& r) { return r.key == "A" ? A : B; };
    MergeTarget t{"w", "w", {}};
    Term term;
    term.kind = TermKind::Linear;
    term.a = tref("A", {1, 3});
    term.b = tref("B", {2, 1});
    term.scale = 0.5f;
    t.terms.push_back(term);
    std::vector<float> w{10, 10, 10, 20, 20, 20};
    sf::lora::apply(t, w, {2, 3}, load);
    EXPECT_EQ(w, (std::vector<float>{10.5f, 11, 11.5f, 21, 22, 23}));
    // fan_in_fan_out: W is (in, out) = (3, 2), delta transposed: [[.5,1],[1,2],[1.5,3]]
    t.terms[0].fan_in_fan_out = true;
    std::vector<float> wt(6, 0.0f);
    sf::lora::apply(t, wt, {3, 2}, load);
    EXPECT_EQ(wt, (std::vector<float>{0.5f, 1, 1, 2, 1.5f, 3}));
}

TEST(LoraMath, EmbeddingIsTransposed) {
    // lora_embedding_A (r=1, vocab=3) = [1,2,3]; B (dim=2, r=1) = [[1],[10]]; dW[v,d] = A[0,v]*B[d,0].
    const std::vector<float> A{1, 2, 3}, B{1, 10};
    MergeTarget t{"e", "e", {}};
    Term term;
    term.kind = TermKind::Embedding;
    term.a = tref("A", {1, 3});
    term.b = tref("B", {2, 1});
    term.scale = 1.0f;
    t.terms.push_back(term);
    std::vector<float> w(6, 0.0f);
    sf::lora::apply(t, w, {3, 2}, [&](const TensorRef& r) { return r.key == "A" ? A : B; });
    EXPECT_EQ(w, (std::vector<float>{1, 10, 2, 20, 3, 30}));
}

TEST(LoraMath, Param3DAsymmetricLayout) {
    // E=2, r=2, in=1, out=1. A rows e*r+k: A = [a00, a01, a10, a11] = [1, 2, 3, 4] (expert-major).
    // B columns k*E+e: B = [b(k0,e0), b(k0,e1), b(k1,e0), b(k1,e1)] = [10, 20, 30, 40] (rank-major).
    // dW[0] = 10*1 + 30*2 = 70; dW[1] = 20*3 + 40*4 = 220.
    const std::vector<float> A{1, 2, 3, 4}, B{10, 20, 30, 40};
    MergeTarget t{"x", "x", {}};
    Term term;
    term.kind = TermKind::Param3D;
    term.a = tref("A", {4, 1});
    term.b = tref("B", {1, 4});
    term.rank = 2;
    term.n_experts = 2;
    term.scale = 1.0f;
    t.terms.push_back(term);
    std::vector<float> w(2, 0.0f);
    sf::lora::apply(t, w, {2, 1, 1}, [&](const TensorRef& r) { return r.key == "A" ? A : B; });
    EXPECT_EQ(w, (std::vector<float>{70, 220}));
}

TEST(LoraMath, DoraRowNormAndZeroNorm) {
    // W = [[3, 0], [0, 0]], dW = 0 (B = 0) except row 1 gets [0, 2] via B=[[0],[1]], A=[[0, 2]], s=1:
    // W+dW = [[3,0],[0,2]]; norms 3, 2; m = [6, 1] -> [[6, 0], [0, 1]].
    const std::vector<float> A{0, 2}, B{0, 1}, m{6, 1};
    MergeTarget t{"d", "d", {}};
    Term term;
    term.kind = TermKind::Linear;
    term.a = tref("A", {1, 2});
    term.b = tref("B", {2, 1});
    term.dora = true;
    term.m = tref("m", {2});
    term.scale = 1.0f;
    t.terms.push_back(term);
    auto load = [&](const TensorRef& r) { return r.key == "A" ? A : r.key == "B" ? B : m; };
    std::vector<float> w{3, 0, 0, 0};
    sf::lora::apply(t, w, {2, 2}, load);
    EXPECT_EQ(w, (std::vector<float>{6, 0, 0, 1}));
    std::vector<float> z{0, 0, 0, 0};
    t.terms[0].a = tref("A", {1, 2});
    const std::vector<float> A0{0, 0};
    EXPECT_EQ(kind_of([&] { sf::lora::apply(t, z, {2, 2}, [&](const TensorRef& r) { return r.key == "A" ? A0 : r.key == "B" ? B : m; }); }),
              sf::core::ErrorKind::BadInput);
}

TEST(LoraMath, ReplaceThenBiasDeltaAndNonFinite) {
    MergeTarget t{"b", "b", {}};
    Term rep;
    rep.kind = TermKind::Replace;
    rep.a = tref("full", {2});
    Term bd;
    bd.kind = TermKind::BiasDelta;
    bd.a = tref("lb", {2});
    bd.scale = 2.0f;
    t.terms = {rep, bd};
    const std::vector<float> full{1, 2}, lb{0.5f, -1};
    std::vector<float> w{100, 100};
    sf::lora::apply(t, w, {2}, [&](const TensorRef& r) { return r.key == "full" ? full : lb; });
    EXPECT_EQ(w, (std::vector<float>{2, 0}));
    const std::vector<float> huge{3e38f, 3e38f};
    try {
        sf::lora::apply(t, w, {2}, [&](const TensorRef& r) { return r.key == "full" ? huge : huge; });
        ADD_FAILURE() << "overflow accepted";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput);
        EXPECT_EQ(e.tensor(), "b");
    }
}

TEST(LoraJson, RoundTrip) {
    MergeTarget t{"model.embed_tokens.weight", "lm_head.weight", {}};
    Term term;
    term.kind = TermKind::Param3D;
    term.a = tref("A", {8, 3});
    term.b = tref("B", {5, 8});
    term.scale = 0.1f;  // not representable in a short decimal: must survive exactly
    term.rank = 2;
    term.n_experts = 4;
    term.transposed = true;
    term.dora = true;
    term.m = tref("m", {5});
    t.terms.push_back(term);
    const auto back = sf::lora::merge_target_from_json(nlohmann::json::parse(sf::lora::to_json(t).dump()));
    EXPECT_EQ(back.base_name, t.base_name);
    EXPECT_EQ(back.out_name, t.out_name);
    ASSERT_EQ(back.terms.size(), 1u);
    EXPECT_EQ(back.terms[0].kind, TermKind::Param3D);
    EXPECT_EQ(sf::core::f32_bits(back.terms[0].scale), sf::core::f32_bits(0.1f));
    EXPECT_EQ(back.terms[0].b.shape, (sf::core::Shape{5, 8}));
    EXPECT_EQ(back.terms[0].n_experts, 4);
    EXPECT_TRUE(back.terms[0].transposed);
    EXPECT_TRUE(back.terms[0].dora);
    EXPECT_EQ(back.terms[0].m.key, "m");
    EXPECT_EQ(kind_of([] { (void)sf::lora::merge_target_from_json(nlohmann::json::parse(R"({"base_name":1})")); }),
              sf::core::ErrorKind::BadInput);
}

namespace {
sf::lora::Adapter mem_adapter(std::vector<std::pair<std::string, sf::core::Shape>> tensors, int r = 2) {
    sf::lora::Adapter a;
    a.dir = "ad";
    a.file = "ad/adapter_model.safetensors";
    a.config.r = r;
    a.config.lora_alpha = 4;
    for (auto& [k, s] : tensors) a.tensors.push_back({"base_model.model." + k, sf::core::DType::F32, s, 0, 0});
    return a;
}
}  // namespace

TEST(LoraResolve, FanInFanOutFollowsShapeUnlessSquare) {
    const std::vector<sf::lora::BaseTensor> base{{"h.attn.c_attn.weight", {4, 12}}, {"h.attn.c_proj.weight", {4, 4}}};
    auto a = mem_adapter({{"h.attn.c_attn.lora_A.weight", {2, 4}}, {"h.attn.c_attn.lora_B.weight", {12, 2}},
                          {"h.attn.c_proj.lora_A.weight", {2, 4}}, {"h.attn.c_proj.lora_B.weight", {4, 2}}});
    auto res = sf::lora::resolve({a}, base, nlohmann::json::object());
    ASSERT_EQ(res.targets.size(), 2u);
    EXPECT_TRUE(res.targets[0].terms[0].fan_in_fan_out);   // (in, out) storage: Conv1D, forced
    EXPECT_FALSE(res.targets[1].terms[0].fan_in_fan_out);  // square: the flag (false) decides
    EXPECT_EQ(res.targets[0].terms[0].scale, 2.0f);        // 4 / 2
    a.config.fan_in_fan_out = true;
    a.weight = 0.5;
    res = sf::lora::resolve({a}, base, nlohmann::json::object());
    EXPECT_TRUE(res.targets[1].terms[0].fan_in_fan_out);
    EXPECT_EQ(res.targets[1].terms[0].scale, 1.0f);  // 4 / 2 * 0.5
}

// PEFT's ParamWrapper reads a 3-D parameter as (E, in, out): a square expert matrix (gpt-oss's down_proj) is merged
// transposed, a non-square one in whichever layout its shape fits; gpt-oss's MXFP4 *_blocks stand for the parameter
// without the suffix with its last two dims swapped, so the same adapter lands in the stored layout.
TEST(LoraResolve, ExpertParametersFollowParamWrapperLayout) {
    const std::vector<sf::lora::BaseTensor> base{{"l.experts.down_proj", {2, 4, 4}}, {"l.experts.gate_up_proj", {2, 6, 4}}};
    auto a = mem_adapter({{"l.experts.lora_A.weight", {4, 4}}, {"l.experts.lora_B.weight", {4, 4}},
                          {"l.experts.base_layer.lora_A.weight", {4, 4}}, {"l.experts.base_layer.lora_B.weight", {6, 4}}});
    a.config.target_parameters = {"experts.gate_up_proj", "experts.down_proj"};
    auto res = sf::lora::resolve({a}, base, nlohmann::json::object());
    ASSERT_EQ(res.targets.size(), 2u);
    for (const auto& t : res.targets) {
        ASSERT_EQ(t.terms.size(), 1u);
        EXPECT_EQ(t.terms[0].kind, TermKind::Param3D);
        // down_proj [2, 4, 4]: square, (E, in, out); gate_up_proj [2, 6, 4] fits only (E, out, in)
        EXPECT_EQ(t.terms[0].transposed, t.base_name == "l.experts.down_proj") << t.base_name;
    }
    const std::vector<sf::lora::BaseTensor> mx{{"l.experts.down_proj_blocks", {2, 4, 4}, "l.experts.down_proj", true},
                                               {"l.experts.gate_up_proj_blocks", {2, 6, 4}, "l.experts.gate_up_proj", true}};
    res = sf::lora::resolve({a}, mx, nlohmann::json::object());
    ASSERT_EQ(res.targets.size(), 2u);
    for (const auto& t : res.targets) {
        EXPECT_TRUE(t.base_name.ends_with("_blocks")) << t.base_name;
        // stored [E, out, in] for both: the delta is written untransposed
        EXPECT_FALSE(t.terms[0].transposed) << t.base_name;
    }
}

TEST(LoraResolve, TiedFlagWithHeadOnDiskOnlyFlipsConfig) {
    const std::vector<sf::lora::BaseTensor> base{{"model.embed_tokens.weight", {10, 4}}, {"lm_head.weight", {10, 4}}};
    auto a = mem_adapter({{"lm_head.lora_A.weight", {2, 4}}, {"lm_head.lora_B.weight", {10, 2}}});
    const auto res = sf::lora::resolve({a}, base, nlohmann::json{{"text_config", {{"tie_word_embeddings", true}}}});
    EXPECT_TRUE(res.untie_embeddings);
    ASSERT_EQ(res.targets.size(), 1u);
    EXPECT_EQ(res.targets[0].base_name, "lm_head.weight");
    EXPECT_EQ(res.targets[0].out_name, "lm_head.weight");
}

// Mistral3ForConditionalGeneration: checkpoints keep "language_model.model.*" / "language_model.lm_head", PEFT on
// transformers >= 4.52 saves "model.language_model.*" / "lm_head" (and the reverse pairing): both land on the base.
TEST(LoraResolve, VisionLanguageModuleNamesMatchEitherCheckpointLayout) {
    const std::vector<sf::lora::BaseTensor> legacy{{"language_model.model.embed_tokens.weight", {10, 4}},
                                                   {"language_model.model.layers.0.self_attn.q_proj.weight", {4, 4}},
                                                   {"language_model.lm_head.weight", {10, 4}},
                                                   {"vision_tower.transformer.layers.0.attention.q_proj.weight", {4, 4}}};
    auto a = mem_adapter({{"model.language_model.layers.0.self_attn.q_proj.lora_A.weight", {2, 4}},
                          {"model.language_model.layers.0.self_attn.q_proj.lora_B.weight", {4, 2}},
                          {"lm_head.lora_A.weight", {2, 4}}, {"lm_head.lora_B.weight", {10, 2}},
                          {"model.vision_tower.transformer.layers.0.attention.q_proj.lora_A.weight", {2, 4}},
                          {"model.vision_tower.transformer.layers.0.attention.q_proj.lora_B.weight", {4, 2}}});
    // Mistral3Config's tie_word_embeddings default is true, but the head is on disk: nothing to untie.
    auto res = sf::lora::resolve({a}, legacy, nlohmann::json::object());
    EXPECT_FALSE(res.untie_embeddings);
    std::vector<std::string> names;
    for (const auto& t : res.targets) names.push_back(t.base_name);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"language_model.lm_head.weight",
                                               "language_model.model.layers.0.self_attn.q_proj.weight",
                                               "vision_tower.transformer.layers.0.attention.q_proj.weight"}));

    const std::vector<sf::lora::BaseTensor> current{{"model.language_model.layers.0.self_attn.q_proj.weight", {4, 4}}};
    auto old = mem_adapter({{"language_model.model.layers.0.self_attn.q_proj.lora_A.weight", {2, 4}},
                            {"language_model.model.layers.0.self_attn.q_proj.lora_B.weight", {4, 2}}});
    res = sf::lora::resolve({old}, current, nlohmann::json::object());
    ASSERT_EQ(res.targets.size(), 1u);
    EXPECT_EQ(res.targets[0].base_name, "model.language_model.layers.0.self_attn.q_proj.weight");

    // A base with the asked-for names is never re-routed: a wrong layer stays an error.
    auto wrong = mem_adapter({{"language_model.model.layers.1.self_attn.q_proj.lora_A.weight", {2, 4}},
                              {"language_model.model.layers.1.self_attn.q_proj.lora_B.weight", {4, 2}}});
    EXPECT_EQ(kind_of([&] { (void)sf::lora::resolve({wrong}, legacy, nlohmann::json::object()); }),
              sf::core::ErrorKind::BadInput);
}

TEST(LoraResolve, UnknownTargetNamesAdapterFileAndKey) {
    const std::vector<sf::lora::BaseTensor> base{{"model.layers.0.q_proj.weight", {4, 4}}};
    auto a = mem_adapter({{"model.layers.1.q_proj.lora_A.weight", {2, 4}}, {"model.layers.1.q_proj.lora_B.weight", {4, 2}}});
    try {
        (void)sf::lora::resolve({a}, base, nlohmann::json());
        ADD_FAILURE() << "accepted";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::BadInput);
        EXPECT_EQ(e.file(), "ad/adapter_model.safetensors");
        EXPECT_EQ(e.tensor(), "base_model.model.model.layers.1.q_proj.lora_A.weight");
    }
}

TEST(LoraResolve, GroupedConvIsUnsupportedPlainConvFlattens) {
    const std::vector<sf::lora::BaseTensor> base{{"c.weight", {6, 2, 3, 3}}, {"d.weight", {6, 4, 3, 3}}};
    auto g = mem_adapter({{"c.lora_A.weight", {2, 4, 3, 3}}, {"c.lora_B.weight", {6, 2, 1, 1}}});
    EXPECT_EQ(kind_of([&] { (void)sf::lora::resolve({g}, base, nlohmann::json()); }), sf::core::ErrorKind::Unsupported);
    auto ok = mem_adapter({{"d.lora_A.weight", {2, 4, 3, 3}}, {"d.lora_B.weight", {6, 2, 1, 1}}});
    const auto res = sf::lora::resolve({ok}, base, nlohmann::json());
    ASSERT_EQ(res.targets.size(), 1u);
    EXPECT_EQ(res.targets[0].terms[0].kind, TermKind::Linear);
}
