// DoRA on the GPU, its decomposition run on the CPU: exec::gpu::dora (src/exec/cuda/dora.cu) stages chunks of
// lora::kernels::features_per_chunk whole features (rows; or a rows x nf column block for per-column features)
// and runs lora::kernels::run_dora with one thread per feature. Here a host DoraF32 hook does exactly that
// staging and runs the features of each chunk in reverse order; lora::apply / apply_rows with the hook must give
// the bytes of the CPU path (which the numpy reference tests check) for row norms, column norms (fan_in_fan_out,
// embeddings), row blocks, and every chunk budget, and report the same zero-norm feature. What this cannot check
// (nvcc's build on a device) is tests/gpu/gpu_identity_test.cpp, skipped without a GPU.
#include <shardforge/lora.hpp>

#include "lora/kernels/dora.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace sf = shardforge;
namespace lk = sf::lora::kernels;
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

// exec::gpu::dora's host loop with host buffers in place of device memory and cudaMemcpy(2D).
sf::lora::DoraF32 host_gpu_dora(std::size_t max_bytes, int* calls) {
    return [max_bytes, calls](float* v, std::int64_t rows, std::int64_t cols, bool per_col, const float* m) {
        ++*calls;
        const std::int64_t n_feat = per_col ? cols : rows, n_red = per_col ? rows : cols;
        if (n_feat <= 0) return std::int64_t{-1};
        const std::int64_t fc = std::min(n_feat, lk::features_per_chunk(n_red, max_bytes));
        std::vector<float> dv(static_cast<std::size_t>(fc * n_red)), dm(static_cast<std::size_t>(fc)), dn(dm.size());
        std::vector<float> norms(static_cast<std::size_t>(n_feat));
        for (std::int64_t f0 = 0; f0 < n_feat; f0 += fc) {
            const std::int64_t nf = std::min(fc, n_feat - f0);
            for (std::int64_t i = 0; i < (per_col ? rows : nf); ++i)  // the H2D copy (2-D for column blocks)
                std::memcpy(dv.data() + i * (per_col ? nf : cols), v + (per_col ? i * cols + f0 : (f0 + i) * cols),
                            static_cast<std::size_t>(per_col ? nf : cols) * sizeof(float));
            std::memcpy(dm.data(), m + f0, static_cast<std::size_t>(nf) * sizeof(float));
            const lk::DoraArgs a = lk::chunk_args(dv.data(), dm.data(), dn.data(), nf, n_red, per_col);
            for (std::int64_t f = nf + 5; f >= 0; --f) lk::run_dora(a, f);  // threads past n_feat do nothing
            std::memcpy(norms.data() + f0, dn.data(), static_cast<std::size_t>(nf) * sizeof(float));
            for (std::int64_t i = 0; i < (per_col ? rows : nf); ++i)  // the D2H copy
                std::memcpy(v + (per_col ? i * cols + f0 : (f0 + i) * cols), dv.data() + i * (per_col ? nf : cols),
                            static_cast<std::size_t>(per_col ? nf : cols) * sizeof(float));
        }
        for (std::int64_t f = 0; f < n_feat; ++f)
            if (norms[static_cast<std::size_t>(f)] == 0.0f) return f;
        return std::int64_t{-1};
    };
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

Case dora_case(TermKind kind, bool fan_in_fan_out) {
    Case c;
    Term term;
    term.kind = kind;
    const std::int64_t r = 4, out = 37, in = 23;
    term.a = c.ref("A", {r, kind == TermKind::Embedding ? out : in}, 1);  // Embedding: A (r, vocab), B (dim, r)
    term.b = c.ref("B", {kind == TermKind::Embedding ? in : out, r}, 2);
    term.scale = 0.37f;
    term.fan_in_fan_out = fan_in_fan_out;
    term.dora = true;
    const bool per_col = kind == TermKind::Embedding || fan_in_fan_out;
    term.m = c.ref("m", {per_col ? (kind == TermKind::Embedding ? in : out) : out}, 3);
    c.t = MergeTarget{"w", "w", {term}};
    c.shape = kind == TermKind::Embedding ? sf::core::Shape{out, in}
              : fan_in_fan_out            ? sf::core::Shape{in, out}
                                          : sf::core::Shape{out, in};
    return c;
}

const std::size_t budgets[] = {1, 4 * 30, 4 * 200, 0};  // one feature per chunk ... all features in one chunk

}  // namespace

TEST(DoraGpuTasks, WholeTensorRowAndColumnNorms) {
    struct Kind {
        TermKind kind;
        bool fifo;
        const char* name;
    };
    for (const Kind k : {Kind{TermKind::Linear, false, "linear (row norms)"},
                         Kind{TermKind::Linear, true, "fan_in_fan_out (column norms)"},
                         Kind{TermKind::Embedding, false, "embedding (column norms)"}}) {
        Case c = dora_case(k.kind, k.fifo);
        const sf::lora::LoadF32 load = [&](const TensorRef& r) { return c.tensors.at(r.key); };
        const std::vector<float> base = values(sf::core::numel(c.shape), 99);
        std::vector<float> cpu = base;
        sf::lora::apply(c.t, cpu, c.shape, load);
        for (const std::size_t budget : budgets) {
            int calls = 0;
            std::vector<float> gpu = base;
            sf::lora::apply(c.t, gpu, c.shape, load, {}, host_gpu_dora(budget, &calls));
            EXPECT_EQ(calls, 1) << k.name;
            EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), cpu.size() * sizeof(float)), 0) << k.name << " budget " << budget;
        }
    }
}

TEST(DoraGpuTasks, RowBlocks) {
    Case c = dora_case(TermKind::Linear, false);
    const sf::lora::LoadF32 load = [&](const TensorRef& r) { return c.tensors.at(r.key); };
    const std::int64_t rows = c.shape[0], cols = c.shape[1];
    const std::vector<float> base = values(sf::core::numel(c.shape), 99);
    for (const auto& [r0, r1] : std::vector<std::pair<std::int64_t, std::int64_t>>{{0, rows}, {5, 19}, {36, 37}})
        for (const std::size_t budget : budgets) {
            std::vector<float> cpu(base.begin() + r0 * cols, base.begin() + r1 * cols), gpu = cpu;
            sf::lora::apply_rows(c.t, cpu, c.shape, r0, r1, load);
            int calls = 0;
            sf::lora::apply_rows(c.t, gpu, c.shape, r0, r1, load, {}, host_gpu_dora(budget, &calls));
            EXPECT_EQ(calls, 1);
            EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), cpu.size() * sizeof(float)), 0)
                << "rows [" << r0 << "," << r1 << ") budget " << budget;
        }
}

TEST(DoraGpuTasks, ZeroNormNamesTheSameFeature) {
    for (const bool fifo : {false, true}) {
        Case c = dora_case(TermKind::Linear, fifo);
        c.t.terms[0].scale = 0.0f;  // dW = 0: the norms are those of W
        const sf::lora::LoadF32 load = [&](const TensorRef& r) { return c.tensors.at(r.key); };
        std::vector<float> base = values(sf::core::numel(c.shape), 99);
        const std::int64_t cols = c.shape[1];
        const std::int64_t zero_feature = 11;  // < both feature counts (37 outputs)
        for (std::int64_t j = 0; j < (fifo ? c.shape[0] : cols); ++j)
            base[static_cast<std::size_t>(fifo ? j * cols + zero_feature : zero_feature * cols + j)] = 0.0f;
        std::string cpu_msg, gpu_msg;
        try {
            std::vector<float> w = base;
            sf::lora::apply(c.t, w, c.shape, load);
        } catch (const sf::core::Error& e) {
            cpu_msg = e.what();
        }
        for (const std::size_t budget : budgets) {
            int calls = 0;
            try {
                std::vector<float> w = base;
                sf::lora::apply(c.t, w, c.shape, load, {}, host_gpu_dora(budget, &calls));
            } catch (const sf::core::Error& e) {
                gpu_msg = e.what();
            }
            EXPECT_NE(cpu_msg.find("output feature 11 "), std::string::npos) << cpu_msg;
            EXPECT_EQ(cpu_msg, gpu_msg);
        }
    }
}
