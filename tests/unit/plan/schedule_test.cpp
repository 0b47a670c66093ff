// Scheduling (schedule.cpp): row blocks respect head boundaries, units tile every item exactly once, the rank
// assignment is a deterministic partition into contiguous cost shares, the cost table orders quant types as the
// quantizer benchmark measured, and the memory budget shrinks blocks or refuses.
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <tuple>

#include <unistd.h>

namespace fs = std::filesystem;
namespace sf = shardforge;

namespace {

struct Demo {
    fs::path dir;
    Demo() {
        dir = fs::temp_directory_path() / ("sf_sched_unit_" + std::to_string(::getpid()));
        fs::remove_all(dir);
        sf::model::write_demo(dir);  // Llama, hidden 256, 8 heads / 2 kv heads
    }
    ~Demo() { fs::remove_all(dir); }
    sf::plan::Options options(const std::string& formats) const {
        sf::plan::Options o;
        o.base = dir / "base";
        o.adapters = {{dir / "adapter", 1.0f}};
        o.out = dir / "out";
        o.outputs = sf::plan::parse_formats(formats);
        o.threads = 2;
        return o;
    }
};

const sf::plan::Item* item_named(const sf::plan::Plan& p, const std::string& emit) {
    for (const auto& it : p.items)
        for (const auto& e : it.emits)
            if (e.name == emit) return &it;
    return nullptr;
}

}  // namespace

TEST(Schedule, UnitsTileEveryItemAndBlocksKeepWholeHeads) {
    Demo d;
    auto o = d.options("safetensors,gguf:q4_k_m");
    o.block_target_bytes = 16 * 1024;  // force row blocks on a tiny model
    const auto p = sf::plan::make_plan(o);
    const auto u = sf::plan::units(p);
    std::vector<std::int64_t> covered(p.items.size(), 0);
    for (const auto& x : u) {
        ASSERT_LT(x.item, p.items.size());
        const auto& it = p.items[x.item];
        ASSERT_LT(x.row_begin, x.row_end);
        EXPECT_EQ(x.row_begin, covered[x.item]) << "units of an item are consecutive and disjoint";
        covered[x.item] = x.row_end;
        if (it.block_rows > 0) { EXPECT_EQ(x.row_begin % it.block_rows, 0); }
    }
    for (std::size_t i = 0; i < p.items.size(); ++i)
        EXPECT_EQ(covered[i], p.items[i].shape.empty() ? 1 : p.items[i].shape[0]) << "item " << i;
    // attn_q (256 rows, 8 heads of 32 rows) is permuted per head in GGUF: its blocks are whole heads.
    const auto* q = item_named(p, "blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    ASSERT_GT(q->block_rows, 0) << "a 256 KB f32 tensor must be split at a 16 KB target";
    EXPECT_EQ(q->block_rows % 32, 0);
    const auto* k = item_named(p, "blk.0.attn_k.weight");  // 2 kv heads of 32 rows
    ASSERT_NE(k, nullptr);
    if (k->block_rows > 0) { EXPECT_EQ(k->block_rows % 32, 0); }
}

TEST(Schedule, AssignmentIsAPartitionIntoContiguousCostShares) {
    Demo d;
    auto o = d.options("safetensors,gguf:q4_k_m");
    o.block_target_bytes = 64 * 1024;
    const auto p = sf::plan::make_plan(o);
    const auto u = sf::plan::units(p);
    for (int n : {1, 2, 3, 4, 7}) {
        std::vector<int> owner(u.size(), -1);
        std::vector<double> load(n, 0);
        double total = 0;
        for (int r = 0; r < n; ++r) {
            const auto mine = sf::plan::assign_units(u, p, r, n);
            EXPECT_EQ(mine, sf::plan::assign_units(u, p, r, n)) << "deterministic";
            for (auto k : mine) {
                ASSERT_EQ(owner[k], -1) << "unit " << k << " assigned twice";
                owner[k] = r;
                load[r] += static_cast<double>(u[k].cost);
            }
        }
        std::uint64_t max_unit = 0;
        for (std::size_t k = 0; k < u.size(); ++k) {
            ASSERT_GE(owner[k], 0) << "unit " << k << " unassigned with " << n << " ranks";
            total += static_cast<double>(u[k].cost);
            max_unit = std::max(max_unit, u[k].cost);
        }
        // Contiguous shares: no rank is more than one unit away from an equal share.
        for (int r = 0; r < n; ++r) EXPECT_LE(load[r], total / n + static_cast<double>(max_unit) + n) << n;
        // Locality: along input order the owner never decreases (each rank reads one contiguous range).
        std::vector<std::uint32_t> order0(u.size());
        for (std::uint32_t k = 0; k < u.size(); ++k) order0[k] = k;
        auto pos = [&](std::uint32_t k) {
            const auto& it = p.items[u[k].item];
            return it.sources.empty() ? std::make_tuple(~0u, std::uint64_t{0}, u[k].row_begin, k)
                                      : std::make_tuple(it.sources[0].file, it.sources[0].offset, u[k].row_begin, k);
        };
        std::sort(order0.begin(), order0.end(), [&](auto a, auto b) { return pos(a) < pos(b); });
        for (std::size_t i = 1; i < order0.size(); ++i) EXPECT_LE(owner[order0[i - 1]], owner[order0[i]]);
    }
}

TEST(Schedule, CostTableOrdersQuantTypesAsMeasured) {
    Demo d;
    const auto q8 = sf::plan::make_plan(d.options("gguf:q8_0"));
    const auto iq4 = sf::plan::make_plan(d.options("gguf:iq4_xs"));
    std::uint64_t c8 = 0, c4 = 0;
    for (const auto& it : q8.items) c8 += it.cost;
    for (const auto& it : iq4.items) c4 += it.cost;
    EXPECT_GT(c4, 3 * c8) << "IQ4_XS quantizes about 9x slower than Q8_0 (quant_bench)";
    sf::plan::StageEstimate s;
    for (const auto& x : sf::plan::units(iq4)) {
        const auto e = sf::plan::estimate(iq4, x);
        s.quantize += e.quantize, s.read += e.read;
    }
    EXPECT_GT(s.quantize, 0);
    EXPECT_GT(s.read, 0);
}

TEST(Schedule, MemoryBudgetShrinksBlocksOrRefuses) {
    Demo d;
    auto o = d.options("safetensors,gguf:q4_k_m");
    const auto free_plan = sf::plan::make_plan(o);
    o.max_memory_per_rank = 56'000'000;
    const auto tight = sf::plan::make_plan(o);
    EXPECT_LE(tight.peak_rank_bytes, o.max_memory_per_rank);
    EXPECT_LT(tight.peak_item_bytes, free_plan.peak_item_bytes);
    EXPECT_GT(sf::plan::units(tight).size(), sf::plan::units(free_plan).size());
    // Same bytes planned: blocks never change offsets or sizes.
    ASSERT_EQ(tight.files.size(), free_plan.files.size());
    for (std::size_t i = 0; i < tight.files.size(); ++i) EXPECT_EQ(tight.files[i].size, free_plan.files[i].size);
    o.max_memory_per_rank = 20'000'000;
    try {
        (void)sf::plan::make_plan(o);
        FAIL() << "a budget below the per-rank overhead must be refused";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage);
        EXPECT_NE(std::string(e.what()).find("max-memory-per-rank"), std::string::npos);
    }
    // The plan round-trips its scheduling fields.
    const auto back = sf::plan::from_json(sf::plan::to_json(tight));
    ASSERT_EQ(back.items.size(), tight.items.size());
    for (std::size_t i = 0; i < back.items.size(); ++i) EXPECT_EQ(back.items[i].block_rows, tight.items[i].block_rows);
    EXPECT_EQ(back.peak_rank_bytes, tight.peak_rank_bytes);
    EXPECT_EQ(back.max_memory_per_rank, tight.max_memory_per_rank);
}

TEST(Schedule, GatherWindowShrinksToFitTheBudget) {
    Demo d;
    auto o = d.options("safetensors,gguf:q4_k_m");
    o.gather = true;
    bool shrunk = false;
    for (std::uint64_t b = 50'000'000; b <= 80'000'000 && !shrunk; b += 250'000) {
        o.max_memory_per_rank = b;
        try {
            const auto p = sf::plan::make_plan(o);
            EXPECT_LE(p.peak_rank_bytes, b);
            EXPECT_GE(p.gather_window, 1);
            shrunk = p.gather_window < 4;
        } catch (const sf::core::Error& e) {
            EXPECT_EQ(e.kind(), sf::core::ErrorKind::Usage);
        }
    }
    EXPECT_TRUE(shrunk) << "some budget between refusal and comfort must shrink the gather window";
    o.max_memory_per_rank = 0;
    EXPECT_EQ(sf::plan::make_plan(o).gather_window, 4);
}

// Qwen3.5: an item whose V heads are tiled by rows (attn_qkv, attn_gate) is one unit even with tiny blocks; out_proj
// (tiled by columns, row-local) is split; the transforms' head and skip survive the plan's JSON (the broadcast).
TEST(Schedule, Qwen35VHeadTiledRowsStayWholeAndTransformsRoundTrip) {
    const fs::path dir = fs::temp_directory_path() / ("sf_sched_q35_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    sf::model::DemoOptions dopt;
    dopt.arch = sf::model::DemoArch::Qwen35;
    sf::model::write_demo(dir, dopt);
    sf::plan::Options o;
    o.base = dir / "base";
    o.adapters = {{dir / "adapter", 1.0f}};
    o.out = dir / "out";
    o.outputs = sf::plan::parse_formats("gguf:f32");
    o.threads = 2;
    o.block_target_bytes = 4 * 1024;
    const auto p = sf::plan::make_plan(o);
    const auto u = sf::plan::units(p);
    auto n_units = [&](const std::string& emit) {
        const sf::plan::Item* it = item_named(p, emit);
        EXPECT_NE(it, nullptr) << emit;
        std::size_t n = 0;
        for (const auto& x : u) n += &p.items[x.item] == it;
        return n;
    };
    EXPECT_EQ(n_units("blk.0.attn_qkv.weight"), 1u);
    EXPECT_EQ(n_units("blk.0.attn_gate.weight"), 1u);
    EXPECT_GT(n_units("blk.0.ssm_out.weight"), 1u);
    EXPECT_GT(n_units("blk.0.ffn_down.weight"), 1u);

    const auto q = sf::plan::from_json(sf::plan::to_json(p));
    const sf::plan::Item* a = item_named(p, "blk.0.attn_qkv.weight");
    const sf::plan::Item* b = item_named(q, "blk.0.attn_qkv.weight");
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(a->emits.size(), 1u);
    ASSERT_EQ(b->emits.size(), 1u);
    // 2 K heads, V heads of 32 rows, after q and k (2 x 2 x 32 rows)
    const std::vector<sf::model::Transform> want = {{sf::model::TransformKind::TileVHeadRows, 2, 32, 128}};
    EXPECT_EQ(a->emits[0].transforms, want);
    EXPECT_EQ(b->emits[0].transforms, want);
    fs::remove_all(dir);
}

// A fused 3-D expert tensor (mlp.experts.gate_up_proj [E, 2I, H]) gives ffn_gate_exps / ffn_up_exps as slices of
// dim -2 under the expert dim: under a small block target or a tight budget they split into blocks of whole experts
// (without that, the 397B Qwen3.5 MoE's 40 GB working set for one gate tensor could not fit a 4 GB budget,
// docs/performance.md "Qwen3.5 MoE at full size").
TEST(Schedule, FusedExpertSlicesSplitIntoWholeExperts) {
    const fs::path dir = fs::temp_directory_path() / ("sf_sched_q35moe_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    sf::model::DemoOptions dopt;
    dopt.arch = sf::model::DemoArch::Qwen35Moe;
    sf::model::write_demo(dir, dopt);
    sf::plan::Options o;
    o.base = dir / "base";
    o.out = dir / "out";
    o.outputs = sf::plan::parse_formats("gguf:f32");
    o.threads = 1;
    o.block_target_bytes = 4 * 1024;
    const auto p = sf::plan::make_plan(o);
    const auto u = sf::plan::units(p);
    for (const char* name : {"blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight"}) {
        const sf::plan::Item* it = item_named(p, name);
        ASSERT_NE(it, nullptr) << name;
        ASSERT_EQ(it->sources.size(), 1u);
        ASSERT_EQ(it->sources[0].shape.size(), 3u) << "the fused gate_up_proj source";
        EXPECT_GE(it->sources[0].row_end, 0) << "a slice of dim -2";
        ASSERT_EQ(it->block_rows, 1) << name << ": one expert per block at a 4 KB target";
        std::int64_t next = 0;
        for (const auto& x : u)
            if (&p.items[x.item] == it) {
                EXPECT_EQ(x.row_begin, next);
                next = x.row_end;
            }
        EXPECT_EQ(next, it->shape[0]) << "the blocks tile every expert once";
    }
    fs::remove_all(dir);
}

// gpt-oss's fused experts are read through a column selection and a transpose of the last two dims
// (llama.cpp's conversion/gpt_oss.py): each expert is computed on its own, so the 3-D weights and the 2-D gate/up
// biases split into blocks of whole experts that tile the item; the plan JSON keeps the selection.
TEST(Schedule, GptOssInterleavedExpertsSplitIntoWholeExperts) {
    const fs::path dir = fs::temp_directory_path() / ("sf_sched_gptoss_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    sf::model::DemoOptions dopt;
    dopt.arch = sf::model::DemoArch::GptOss;
    sf::model::write_demo(dir, dopt);
    sf::plan::Options o;
    o.base = dir / "base";
    o.out = dir / "out";
    o.outputs = sf::plan::parse_formats("gguf:f32");
    o.threads = 1;
    o.block_target_bytes = 4 * 1024;
    const auto p = sf::plan::make_plan(o);
    const auto u = sf::plan::units(p);
    for (const char* name : {"blk.0.ffn_gate_exps.weight", "blk.0.ffn_up_exps.weight", "blk.0.ffn_down_exps.weight",
                             "blk.0.ffn_gate_exps.bias", "blk.0.ffn_up_exps.bias"}) {
        const sf::plan::Item* it = item_named(p, name);
        ASSERT_NE(it, nullptr) << name;
        ASSERT_EQ(it->sources.size(), 1u);
        const auto& s = it->sources[0];
        EXPECT_TRUE(s.transpose || s.col_step == 2) << name;
        EXPECT_EQ(s.kept_elems(), sf::core::numel(it->shape)) << name;
        // weights: one expert per block at a 4 KB target; the biases (1.5 KB per expert): two
        ASSERT_EQ(it->block_rows, it->shape.size() == 3 ? 1 : 2) << name;
        std::int64_t next = 0;
        for (const auto& x : u)
            if (&p.items[x.item] == it) {
                EXPECT_EQ(x.row_begin, next);
                next = x.row_end;
            }
        EXPECT_EQ(next, it->shape[0]) << name << ": the blocks tile every expert once";
    }
    const auto back = sf::plan::from_json(sf::plan::to_json(p));
    const sf::plan::Item* up = item_named(back, "blk.0.ffn_up_exps.weight");
    ASSERT_NE(up, nullptr);
    EXPECT_EQ(up->sources[0].col_begin, 1);
    EXPECT_EQ(up->sources[0].col_step, 2);
    EXPECT_TRUE(up->sources[0].transpose);
    fs::remove_all(dir);
}

// The column selection and transpose of one source (plan::append_source_values): [2, 2, 4] with columns 1::2,
// transposed, gives per matrix [[m01, m11], [m03, m13]].
TEST(Schedule, AppendSourceValuesSelectsColumnsAndTransposes) {
    sf::plan::Source s;
    s.shape = {2, 2, 4};
    s.col_begin = 1;
    s.col_step = 2;
    s.transpose = true;
    std::vector<float> src(16);
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
    std::vector<float> out;
    sf::plan::append_source_values(src, s, out);
    EXPECT_EQ(out, (std::vector<float>{1, 5, 3, 7, 9, 13, 11, 15}));
    s.transpose = false;
    out.clear();
    sf::plan::append_source_values(src, s, out);
    EXPECT_EQ(out, (std::vector<float>{1, 3, 5, 7, 9, 11, 13, 15}));
    EXPECT_EQ(s.kept_elems(), 8);
}

// Llama 4's fused experts (llama.cpp's conversion/llama.py Llama4Model): a contiguous column range [col_begin, col_end)
// of each matrix, transposed. [2, 2, 4] with columns [2, 4) gives per matrix [[m02, m12], [m03, m13]].
TEST(Schedule, AppendSourceValuesTakesAColumnRange) {
    sf::plan::Source s;
    s.shape = {2, 2, 4};
    s.col_begin = 2;
    s.col_end = 4;
    s.transpose = true;
    std::vector<float> src(16);
    for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
    std::vector<float> out;
    sf::plan::append_source_values(src, s, out);
    EXPECT_EQ(out, (std::vector<float>{2, 6, 3, 7, 10, 14, 11, 15}));
    EXPECT_EQ(s.kept_elems(), 8);
    s.col_begin = 0;
    s.col_end = 1;  // the first column only: a selection even with col_begin 0 and step 1
    s.transpose = false;
    EXPECT_TRUE(s.reshaped());
    out.clear();
    sf::plan::append_source_values(src, s, out);
    EXPECT_EQ(out, (std::vector<float>{0, 4, 8, 12}));
}

// The llama4 demo's fused gate_up_proj halves: blocks of whole experts tile each item, and the plan JSON keeps the
// column range (col_end).
TEST(Schedule, Llama4FusedExpertHalvesSplitIntoWholeExperts) {
    const fs::path dir = fs::temp_directory_path() / ("sf_sched_llama4_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    sf::model::DemoOptions dopt;
    dopt.arch = sf::model::DemoArch::Llama4;
    sf::model::write_demo(dir, dopt);
    sf::plan::Options o;
    o.base = dir / "base";
    o.out = dir / "out";
    o.outputs = sf::plan::parse_formats("gguf:f32");
    o.threads = 1;
    o.block_target_bytes = 4 * 1024;
    const auto p = sf::plan::make_plan(o);
    const auto u = sf::plan::units(p);
    for (const char* name : {"blk.1.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight", "blk.1.ffn_down_exps.weight"}) {
        const sf::plan::Item* it = item_named(p, name);
        ASSERT_NE(it, nullptr) << name;
        ASSERT_EQ(it->sources.size(), 1u);
        EXPECT_TRUE(it->sources[0].transpose) << name;
        EXPECT_EQ(it->sources[0].kept_elems(), sf::core::numel(it->shape)) << name;
        EXPECT_EQ(it->block_rows, 1) << name << ": one expert per block";
        std::int64_t next = 0;
        for (const auto& x : u)
            if (&p.items[x.item] == it) {
                EXPECT_EQ(x.row_begin, next);
                next = x.row_end;
            }
        EXPECT_EQ(next, it->shape[0]) << name << ": the blocks tile every expert once";
    }
    const auto back = sf::plan::from_json(sf::plan::to_json(p));
    const sf::plan::Item* up = item_named(back, "blk.1.ffn_up_exps.weight");
    ASSERT_NE(up, nullptr);
    EXPECT_EQ(up->sources[0].col_begin, 384);  // moe_ff of the default demo (intermediate 768)
    EXPECT_EQ(up->sources[0].col_end, 768);
    EXPECT_TRUE(up->sources[0].transpose);
    fs::remove_all(dir);
}

// One read for every output of a MoE (plan_gguf.cpp add_map_emit): with safetensors, bnb-nf4 and two GGUF types,
// every expert's own tensor is a window of the stacked GGUF item that reads it, no expert tensor has an item of its
// own, both GGUF types share that item, each source is read by exactly one item, and the windows survive the plan
// JSON. emit_part cuts a window's bytes by the unit's rows and is empty for units that miss it.
TEST(Schedule, ExpertTensorsAreWindowsOfTheirStackedItem) {
    const fs::path dir = fs::temp_directory_path() / ("sf_sched_q3moe_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    sf::model::DemoOptions dopt;
    dopt.arch = sf::model::DemoArch::Qwen3Moe;
    sf::model::write_demo(dir, dopt);
    for (const char* formats : {"safetensors,gguf:q8_0,gguf:q4_k_m", "bnb-nf4,gguf:q8_0"}) {
        sf::plan::Options o;
        o.base = dir / "base";
        o.out = dir / "out";
        o.outputs = sf::plan::parse_formats(formats);
        o.threads = 1;
        o.block_target_bytes = 64 * 1024;
        const auto p = sf::plan::from_json(sf::plan::to_json(sf::plan::make_plan(o)));
        std::set<std::tuple<std::uint32_t, std::uint64_t>> read;
        for (const auto& it : p.items)
            for (const auto& s : it.sources)
                EXPECT_TRUE(read.insert({s.file, s.offset}).second) << formats << ": " << s.name << " read twice";
        const sf::plan::Item* it = item_named(p, "blk.0.ffn_up_exps.weight");
        ASSERT_NE(it, nullptr) << formats;
        ASSERT_GE(it->shape.size(), 3u);
        const std::int64_t n_expert = it->shape[0];
        EXPECT_EQ(std::int64_t(it->sources.size()), n_expert);
        int ggufs = 0, windows = 0;
        for (const auto& e : it->emits) {
            if (!e.windowed()) {
                ++ggufs;
                continue;
            }
            ++windows;
            const std::int64_t k = e.row_begin;
            ASSERT_EQ(e.row_end, k + 1) << e.name;
            EXPECT_EQ(e.name.rfind("model.layers.0.mlp.experts." + std::to_string(k) + ".up_proj.weight", 0), 0u);
            EXPECT_EQ(e.shape, it->sources[static_cast<std::size_t>(k)].shape) << e.name;
            // The whole item, the expert's own row, and a block that misses it.
            EXPECT_EQ(sf::plan::emit_part(*it, e, 0, n_expert).nbytes, e.nbytes);
            const auto own = sf::plan::emit_part(*it, e, k, k + 1);
            EXPECT_TRUE(own.whole() && own.offset == 0 && own.nbytes == e.nbytes) << e.name;
            const auto miss = k == 0 ? sf::plan::emit_part(*it, e, 1, n_expert) : sf::plan::emit_part(*it, e, 0, k);
            EXPECT_TRUE(miss.empty() && miss.nbytes == 0) << e.name;
        }
        EXPECT_EQ(ggufs, std::string(formats).starts_with("safetensors") ? 2 : 1) << formats;
        EXPECT_EQ(windows, n_expert) << formats;
        EXPECT_EQ(item_named(p, "model.layers.0.mlp.experts.0.up_proj.weight"), it) << formats;
    }
    fs::remove_all(dir);
}
