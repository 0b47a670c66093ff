// lora::apply_rows (row-block merge, docs/engine.md): merging a tensor block by block, for any split into row
// blocks, gives bit-for-bit the values of the whole-tensor lora::apply (which the reference tests compare with an
// independent numpy merge) for every term kind that row_blockable() accepts.
#include <shardforge/lora.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <map>

namespace sf = shardforge;
using sf::lora::MergeTarget;
using sf::lora::Term;
using sf::lora::TermKind;
using sf::lora::TensorRef;

namespace {

std::vector<float> values(std::int64_t n, std::uint64_t seed) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x = static_cast<float>(static_cast<std::int64_t>(seed >> 40) % 2001 - 1000) / 777.0f;
    }
    return v;
}

struct Case {
    MergeTarget t;
    sf::core::Shape shape;
    std::map<std::string, std::vector<float>> tensors;
    TensorRef ref(const std::string& key, sf::core::Shape s, std::uint64_t seed) {
        tensors[key] = values(sf::core::numel(s), seed);
        return TensorRef{0, "adapter_model.safetensors", key, std::move(s)};
    }
};

// Whole-tensor apply vs apply_rows over the blocks [0,b1), [b1,b2), ... for each split.
void expect_blocks_equal_whole(Case& c, const std::vector<std::vector<std::int64_t>>& splits) {
    const sf::lora::LoadF32 load = [&](const TensorRef& r) { return c.tensors.at(r.key); };
    const std::int64_t rows = c.shape[0], row = sf::core::numel(c.shape) / rows;
    const std::vector<float> base = values(sf::core::numel(c.shape), 99);
    std::vector<float> whole = base;
    sf::lora::apply(c.t, whole, c.shape, load);
    ASSERT_TRUE(sf::lora::row_blockable(c.t));
    for (const auto& cuts : splits) {
        std::vector<float> blocks;
        std::int64_t r0 = 0;
        std::vector<std::int64_t> ends = cuts;
        ends.push_back(rows);
        for (std::int64_t r1 : ends) {
            std::vector<float> w(base.begin() + r0 * row, base.begin() + r1 * row);
            sf::lora::apply_rows(c.t, w, c.shape, r0, r1, load);
            blocks.insert(blocks.end(), w.begin(), w.end());
            r0 = r1;
        }
        ASSERT_EQ(blocks.size(), whole.size());
        EXPECT_EQ(std::memcmp(blocks.data(), whole.data(), whole.size() * sizeof(float)), 0)
            << "blocks differ from the whole merge (first cut " << (cuts.empty() ? -1 : cuts[0]) << ")";
    }
}

}  // namespace

TEST(LoraRows, LinearFanInFanOutAndDoraRows) {
    for (int variant = 0; variant < 3; ++variant) {
        Case c;
        Term term;
        term.kind = TermKind::Linear;
        const std::int64_t r = 4, out = 13, in = 7;
        term.a = c.ref("A", {r, in}, 1);
        term.b = c.ref("B", {out, r}, 2);
        term.scale = 0.37f;
        term.fan_in_fan_out = variant == 1;
        if (variant == 2) {
            term.dora = true;
            term.m = c.ref("m", {out}, 3);
        }
        c.t = MergeTarget{"w", "w", {term}};
        c.shape = variant == 1 ? sf::core::Shape{in, out} : sf::core::Shape{out, in};
        expect_blocks_equal_whole(c, {{1}, {3, 5}, {2, 4, 6}});
    }
}

TEST(LoraRows, EmbeddingRowsAreVocabulary) {
    Case c;
    Term term;
    term.kind = TermKind::Embedding;
    term.a = c.ref("A", {3, 11}, 4);  // (r, vocab)
    term.b = c.ref("B", {5, 3}, 5);   // (dim, r)
    term.scale = 2.0f;
    c.t = MergeTarget{"e", "e", {term}};
    c.shape = {11, 5};
    expect_blocks_equal_whole(c, {{1}, {4, 9}, {5, 6, 7, 8}});
    // DoRA on an embedding normalises columns: never split.
    c.t.terms[0].dora = true;
    EXPECT_FALSE(sf::lora::row_blockable(c.t));
}

TEST(LoraRows, Param3DBlocksAreExperts) {
    for (bool transposed : {false, true}) {
        Case c;
        Term term;
        term.kind = TermKind::Param3D;
        const std::int64_t E = 4, r = 2, in = 3, out = 5;
        term.a = c.ref("A", {E * r, in}, 6);
        term.b = c.ref("B", {out, r * E}, 7);
        term.rank = r;
        term.n_experts = E;
        term.transposed = transposed;
        term.scale = 0.5f;
        c.t = MergeTarget{"x", "x", {term}};
        c.shape = transposed ? sf::core::Shape{E, in, out} : sf::core::Shape{E, out, in};
        expect_blocks_equal_whole(c, {{1}, {1, 3}, {2}});
    }
}

TEST(LoraRows, ReplaceThenBiasDelta) {
    Case c;
    Term rep, bd;
    rep.kind = TermKind::Replace;
    rep.a = c.ref("full", {6, 4}, 8);
    bd.kind = TermKind::BiasDelta;
    bd.a = c.ref("lb", {6, 4}, 9);
    bd.scale = 1.5f;
    c.t = MergeTarget{"b", "b", {rep, bd}};
    c.shape = {6, 4};
    expect_blocks_equal_whole(c, {{2}, {1, 5}});
}
