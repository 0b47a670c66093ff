// --format gguf-lora planning (plan_gguf_lora.cpp): file name, tensor pairs and shapes, folded PEFT scale, Q/K
// permutation on lora_b only, refusals. Expected values come from llama.cpp's convert_lora_to_gguf.py and PEFT's
// scaling rules.
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <variant>

#include <unistd.h>

namespace fs = std::filesystem;
namespace sf = shardforge;

namespace {

struct Demo {
    fs::path dir;
    Demo() {
        dir = fs::temp_directory_path() / ("sf_glora_unit_" + std::to_string(::getpid()));
        fs::remove_all(dir);
        sf::model::write_demo(dir);  // Llama, 8 heads / 2 kv heads, r=8, alpha=16
    }
    ~Demo() { fs::remove_all(dir); }
    void edit_adapter_config(const std::function<void(nlohmann::json&)>& f) const {
        const fs::path p = dir / "adapter" / "adapter_config.json";
        nlohmann::json j = nlohmann::json::parse(std::ifstream(p));
        f(j);
        std::ofstream(p) << j.dump(2);
    }
    sf::plan::Options options(const std::string& type) const {
        sf::plan::Options o;
        o.base = dir / "base";
        o.adapters = {{dir / "adapter", 1.0f}};
        o.out = dir / "out";
        o.outputs = {{sf::plan::Format::GgufLora, type}};
        return o;
    }
};

// The ggml type of a GGUF emit (fails the test for another encoding).
sf::quant::GgmlType ggml_type(const sf::plan::Emit& e) {
    const auto* g = std::get_if<sf::plan::GgmlEncoding>(&e.encoding);
    EXPECT_NE(g, nullptr) << e.name;
    return g ? g->type : sf::quant::unset_type;
}

std::map<std::string, const sf::plan::Emit*> emits_by_name(const sf::plan::Plan& p) {
    std::map<std::string, const sf::plan::Emit*> m;
    for (const auto& it : p.items)
        for (const auto& e : it.emits) m[e.name] = &e;
    return m;
}

TEST(GgufLora, PlainAdapterPairsShapesAndName) {
    Demo d;
    const sf::plan::Plan p = sf::plan::make_plan(d.options("f32"));
    ASSERT_EQ(p.files.size(), 1u);
    EXPECT_EQ(p.files[0].name, "base-lora-f32.gguf");
    const auto m = emits_by_name(p);
    EXPECT_EQ(m.size(), 4u * 7u * 2u);  // 4 layers x q,k,v,o,gate,up,down x (a, b)
    ASSERT_TRUE(m.count("blk.0.attn_q.weight.lora_a") && m.count("blk.0.attn_q.weight.lora_b"));
    // alpha/r = 16/8 is exactly what llama.cpp computes: nothing folded.
    for (const auto& [name, e] : m) EXPECT_EQ(e->scale, 1.0f) << name;
    // Q/K permutation (8 and 2 heads) on lora_b only; v has none.
    const auto& qb = m.at("blk.0.attn_q.weight.lora_b")->transforms;
    ASSERT_EQ(qb.size(), 1u);
    EXPECT_EQ(qb[0].kind, sf::model::TransformKind::PermuteLlamaHeads);
    EXPECT_EQ(qb[0].arg, 8);
    ASSERT_EQ(m.at("blk.0.attn_k.weight.lora_b")->transforms.size(), 1u);
    EXPECT_EQ(m.at("blk.0.attn_k.weight.lora_b")->transforms[0].arg, 2);
    EXPECT_TRUE(m.at("blk.0.attn_q.weight.lora_a")->transforms.empty());
    EXPECT_TRUE(m.at("blk.0.attn_v.weight.lora_b")->transforms.empty());
    // F32 sizes: lora_a (8, 256), lora_b of down (256, 8).
    EXPECT_EQ(m.at("blk.0.attn_q.weight.lora_a")->nbytes, 8u * 256u * 4u);
    EXPECT_EQ(m.at("blk.0.ffn_down.weight.lora_b")->nbytes, 256u * 8u * 4u);
}

TEST(GgufLora, RsloraAndWeightFoldedIntoB) {
    Demo d;
    d.edit_adapter_config([](nlohmann::json& j) { j["use_rslora"] = true; });
    sf::plan::Options o = d.options("f32");
    o.adapters[0].second = 0.5f;
    const sf::plan::Plan p = sf::plan::make_plan(o);
    // PEFT: 0.5 * 16/sqrt(8); llama.cpp: 16/8.
    const double want = 0.5 * 16.0 / std::sqrt(8.0) / 2.0;
    for (const auto& [name, e] : emits_by_name(p)) {
        if (name.ends_with(".lora_b"))
            EXPECT_NEAR(e->scale, want, 1e-6 * want) << name;
        else
            EXPECT_EQ(e->scale, 1.0f) << name;
    }
}

TEST(GgufLora, Q8_0SmallRankFallsBackToF16) {
    Demo d;
    const sf::plan::Plan p = sf::plan::make_plan(d.options("q8_0"));
    const auto m = emits_by_name(p);
    EXPECT_EQ(p.files[0].name, "base-lora-q8_0.gguf");
    EXPECT_EQ(ggml_type(*m.at("blk.0.attn_q.weight.lora_a")), sf::quant::GgmlType::Q8_0);  // ne0 = 256
    EXPECT_EQ(ggml_type(*m.at("blk.0.attn_q.weight.lora_b")), sf::quant::GgmlType::F16);   // ne0 = r = 8
}

TEST(GgufLora, Refusals) {
    Demo d;
    sf::plan::Options two = d.options("f32");
    two.adapters.push_back(two.adapters[0]);
    EXPECT_THROW(
        {
            try {
                (void)sf::plan::make_plan(two);
            } catch (const sf::core::Error& e) {
                EXPECT_EQ(e.kind(), sf::core::ErrorKind::Unsupported);
                EXPECT_NE(std::string(e.what()).find("--format gguf:"), std::string::npos) << e.what();
                throw;
            }
        },
        sf::core::Error);
    sf::plan::Options none = d.options("f32");
    none.adapters.clear();
    EXPECT_THROW((void)sf::plan::make_plan(none), sf::core::Error);
    EXPECT_THROW((void)sf::plan::make_plan(d.options("q4_k_m")), sf::core::Error);
}

}  // namespace
