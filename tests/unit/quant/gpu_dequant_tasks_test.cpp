// The GPU backend's decomposition of the quantized-input dequantizers, run on the CPU: the CUDA path
// (src/quant/cuda/device.cu + dequant.cu) plans chunks with dtasks::plan_chunks for the staging budget, packs each
// chunk's inputs into one blob with dtasks::pack_* (pointers rebased to the chunk) and runs dtasks::run_*(args, g)
// with one thread per `group` elements. Here the same plans, blobs and run_* calls execute on the host (groups in
// reverse order: GPU threads have no order), for every input layout (NF4/FP4 with and without double quant, odd
// element counts, F32/BF16/F16 output dtypes, LLM.int8, FP8 E4M3/E5M2 with 128x128 partial edge blocks,
// per-channel, per-tensor and a compressed-tensors block grid), for whole tensors and row-block sub-ranges, and
// with chunk budgets from one element group up to the whole tensor. The bytes must equal quant::dequant_*'s.
// The nvcc build of the same code on a device is tests/gpu/gpu_identity_test.cpp (skipped without a GPU).
#include <shardforge/quant.hpp>

#include "quant/kernels/dequant_tasks.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace q = shardforge::quant;
namespace dt = shardforge::quant::dtasks;
using shardforge::core::DType;

namespace {

// What device.cu does for one call, on the host: chunks of at most max_elems outputs, one blob per chunk.
template <class Pack, class Run>
std::vector<float> host_gpu(std::int64_t k0, std::int64_t k1, std::int64_t unit, std::int64_t max_elems, Pack&& pack,
                            Run&& run) {
    std::vector<float> out(static_cast<std::size_t>(k1 - k0), -12345.0f);
    for (const dt::Chunk& c : dt::plan_chunks(k0, k1, unit, max_elems)) {
        EXPECT_LE(c.base, c.k0);
        EXPECT_EQ(c.base % unit, 0);
        dt::Blob sizing(nullptr, nullptr);
        (void)pack(c, sizing, nullptr);
        std::vector<std::byte> blob(sizing.size() + 16);
        dt::Blob b(blob.data(), blob.data());
        const auto args = pack(c, b, out.data() + (c.k0 - k0));
        EXPECT_EQ(b.size(), sizing.size());
        for (std::int64_t g = dt::n_groups(args.k0, args.k1) - 1; g >= 0; --g) run(args, g);
    }
    return out;
}

void expect_same(const std::vector<float>& cpu, const std::vector<float>& gpu, const std::string& what) {
    ASSERT_EQ(cpu.size(), gpu.size()) << what;
    EXPECT_EQ(std::memcmp(cpu.data(), gpu.data(), cpu.size() * 4), 0) << what;
}

// Sub-ranges a call may get: the whole tensor, row blocks (odd starts included) and a single element.
std::vector<std::pair<std::int64_t, std::int64_t>> ranges(std::int64_t n, std::int64_t cols) {
    return {{0, n}, {cols, n - 2 * cols}, {3 * cols + 1, 5 * cols + 3}, {n - 1, n}, {7, 8}};
}
const std::int64_t budgets[] = {1, 64, 1000, 4096, 1 << 30};

}  // namespace

TEST(GpuDequantTasks, Bnb4EveryLayout) {
    std::mt19937 rng(7);
    const std::int64_t rows = 37, cols = 131, n = rows * cols;  // 4847 elements: odd, not a multiple of 64
    std::vector<std::uint8_t> packed(static_cast<std::size_t>((n + 1) / 2 + 3));  // slack as a bf16 quant_storage has
    for (auto& b : packed) b = static_cast<std::uint8_t>(rng());
    for (const bool fp4 : {false, true})
        for (const bool nested : {false, true})
            for (const std::int64_t bs : {std::int64_t{64}, std::int64_t{128}, std::int64_t{4096}})
                for (const DType out : {DType::F32, DType::BF16, DType::F16}) {
                    const std::int64_t nblocks = (n + bs - 1) / bs, nbs = 4;
                    std::vector<float> absmax(static_cast<std::size_t>(nblocks));
                    std::vector<std::uint8_t> codes(absmax.size());
                    for (auto& a : absmax) a = 0.01f + static_cast<float>(rng() % 1000) * 1e-3f;
                    for (auto& c : codes) c = static_cast<std::uint8_t>(rng());
                    std::vector<float> nested_absmax(static_cast<std::size_t>((nblocks + nbs - 1) / nbs));
                    for (auto& a : nested_absmax) a = 0.001f + static_cast<float>(rng() % 100) * 1e-4f;
                    float nested_code[256];
                    q::bnb_dynamic_map(nested_code);
                    q::Bnb4View v;
                    v.packed = packed.data();
                    v.code = fp4 ? q::bnb_fp4_code() : q::bnb_nf4_code();
                    v.blocksize = bs;
                    if (nested) {
                        v.absmax_code = codes.data();
                        v.nested_code = nested_code;
                        v.nested_absmax = nested_absmax.data();
                        v.nested_blocksize = nbs;
                        v.nested_offset = 0.0123f;
                    } else {
                        v.absmax = absmax.data();
                    }
                    v.out_dtype = out;
                    for (const auto& [k0, k1] : ranges(n, cols))
                        for (const std::int64_t budget : budgets) {
                            std::vector<float> cpu(static_cast<std::size_t>(k1 - k0));
                            q::dequant_bnb4(v, k0, k1, cpu.data());
                            const auto gpu = host_gpu(
                                k0, k1, dt::bnb4_unit(v), budget,
                                [&](const dt::Chunk& c, dt::Blob& b, float* d) { return dt::pack_bnb4(v, c, b, d); },
                                [](const dt::Bnb4Args& a, std::int64_t g) { dt::run_bnb4(a, g); });
                            expect_same(cpu, gpu,
                                        std::string(fp4 ? "FP4" : "NF4") + (nested ? " nested" : "") + " bs " +
                                            std::to_string(bs) + " " + std::string(shardforge::core::dtype_name(out)) +
                                            " [" + std::to_string(k0) + "," + std::to_string(k1) + ") budget " +
                                            std::to_string(budget));
                        }
                }
}

TEST(GpuDequantTasks, Int8) {
    std::mt19937 rng(11);
    const std::int64_t rows = 41, cols = 97, n = rows * cols;
    std::vector<std::int8_t> cb(static_cast<std::size_t>(n));
    for (auto& x : cb) x = static_cast<std::int8_t>(rng());
    std::vector<float> scb(static_cast<std::size_t>(rows));
    for (auto& s : scb) s = static_cast<float>(rng() % 5000) * 1e-3f;
    for (const auto& [k0, k1] : ranges(n, cols))
        for (const std::int64_t budget : budgets) {
            std::vector<float> cpu(static_cast<std::size_t>(k1 - k0));
            q::dequant_int8(cb.data(), scb.data(), cols, k0, k1, cpu.data());
            const auto gpu = host_gpu(
                k0, k1, dt::int8_unit(cols), budget,
                [&](const dt::Chunk& c, dt::Blob& b, float* d) { return dt::pack_int8(cb.data(), scb.data(), cols, c, b, d); },
                [](const dt::Int8Args& a, std::int64_t g) { dt::run_int8(a, g); });
            expect_same(cpu, gpu, "int8 [" + std::to_string(k0) + "," + std::to_string(k1) + ") budget " + std::to_string(budget));
        }
}

TEST(GpuDequantTasks, Fp8EveryScaleLayout) {
    std::mt19937 rng(13);
    const std::int64_t rows = 300, cols = 200, n = rows * cols;  // 128x128 blocks: partial edge blocks both ways
    std::vector<std::uint8_t> w(static_cast<std::size_t>(n));
    for (auto& x : w) x = static_cast<std::uint8_t>(rng());
    struct Layout {
        const char* name;
        std::int64_t br, bc;
    };
    const Layout layouts[] = {{"weight_scale_inv 128x128", 128, 128},
                              {"per-channel", 1, cols},
                              {"per-tensor", rows, cols},
                              {"compressed-tensors block 64x32", 64, 32}};
    for (const bool e5m2 : {false, true})
        for (const Layout& l : layouts) {
            const std::int64_t grid = ((rows + l.br - 1) / l.br) * ((cols + l.bc - 1) / l.bc);
            std::vector<float> scale(static_cast<std::size_t>(grid));
            for (auto& s : scale) s = static_cast<float>(rng() % 9000 + 1) * 1e-4f;
            q::Fp8View v;
            v.w = w.data();
            v.e5m2 = e5m2;
            v.scale = scale.data();
            v.rows = rows;
            v.cols = cols;
            v.block_rows = l.br;
            v.block_cols = l.bc;
            for (const auto& [k0, k1] : ranges(n, cols))
                for (const std::int64_t budget : budgets) {
                    std::vector<float> cpu(static_cast<std::size_t>(k1 - k0));
                    q::dequant_fp8(v, k0, k1, cpu.data());
                    const auto gpu = host_gpu(
                        k0, k1, dt::fp8_unit(), budget,
                        [&](const dt::Chunk& c, dt::Blob& b, float* d) { return dt::pack_fp8(v, c, b, d); },
                        [](const dt::Fp8Args& a, std::int64_t g) { dt::run_fp8(a, g); });
                    expect_same(cpu, gpu, std::string(e5m2 ? "E5M2 " : "E4M3 ") + l.name + " [" + std::to_string(k0) +
                                              "," + std::to_string(k1) + ") budget " + std::to_string(budget));
                }
        }
}

TEST(GpuDequantTasks, ChunkPlansCoverTheRangeOnce) {
    for (const std::int64_t unit : {1, 64, 130, 16384})
        for (const std::int64_t budget : {1, 64, 1000, 100000})
            for (const auto& [k0, k1] : std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 50000}, {777, 40001}, {5, 6}}) {
                std::int64_t next = k0;
                for (const dt::Chunk& c : dt::plan_chunks(k0, k1, unit, budget)) {
                    EXPECT_EQ(c.k0, next);
                    EXPECT_LT(c.k0, c.k1);
                    EXPECT_EQ(c.base % unit, 0);
                    EXPECT_LE(c.base, c.k0);
                    EXPECT_LE(c.k1 - c.base, std::max(budget / unit * unit, unit));  // inputs fit the staging size
                    next = c.k1;
                }
                EXPECT_EQ(next, k1);
            }
}
