// gpu.identity: on a CUDA device, quant::gpu::Device gives the CPU's bytes for every quant type and input layout
// (f32/f16/bf16/fp8 sources converted on the GPU, with and without imatrix, one chunk or many chunks through the
// two-stream pipeline), its dequantizers the CPU's floats, and the LoRA delta kernel gives lora::delta_f32's bits
// (the defined order, on every CPU SIMD path). The quantized-input dequantizers (NF4/FP4 with and
// without double quant, LLM.int8, FP8 with 128x128 / per-channel / per-tensor / compressed-tensors block scales)
// give the CPU's floats for whole tensors and row ranges, in one chunk or many; DoRA's norm and rescale on the GPU
// gives the CPU's bytes for the same W + dW, and a whole GPU DoRA merge (delta kernel + GPU norm) gives the CPU
// merge's bytes. Exits 77 (ctest: skipped) without a device.
#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/quant.hpp>

#include "exec/gpu.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::GgmlType;

namespace {

int failures = 0;
void fail(const std::string& m) {
    std::printf("FAIL: %s\n", m.c_str());
    ++failures;
}

std::vector<float> input(std::int64_t n, std::uint32_t s) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (auto& v : x) {
        s = s * 1664525u + 1013904223u;
        v = (static_cast<float>(s >> 8) / 16777216.0f - 0.5f) * 0.2f;
    }
    for (std::size_t i = 0; i < x.size(); i += 97) x[i] *= 8.0f;
    return x;
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// Quantized-input dequantization, every layout, GPU vs CPU (bit-identical).
void check_dequant(sf::quant::gpu::Device& dev) {
    namespace q = sf::quant;
    std::mt19937 rng(3);
    const std::int64_t rows = 257, cols = 385, n = rows * cols;  // 98945 (odd) elements: several 1 MiB-budget chunks
    const std::vector<std::pair<std::int64_t, std::int64_t>> ranges = {{0, n}, {3 * cols + 1, 200 * cols + 7}, {n - 1, n}};
    auto run = [&](const std::string& what, auto&& cpu_f, auto&& gpu_f) {
        for (const auto& [k0, k1] : ranges) {
            std::vector<float> c(static_cast<std::size_t>(k1 - k0)), g(c.size(), -9.0f);
            cpu_f(k0, k1, c.data());
            gpu_f(k0, k1, g.data());
            if (!same(c, g)) fail(what + " [" + std::to_string(k0) + "," + std::to_string(k1) + ") differs from the CPU");
        }
    };
    std::vector<std::uint8_t> packed(static_cast<std::size_t>(n / 2 + 2));
    for (auto& b : packed) b = static_cast<std::uint8_t>(rng());
    float nested_code[256];
    q::bnb_dynamic_map(nested_code);
    for (const bool fp4 : {false, true})
        for (const bool nested : {false, true})
            for (const sf::core::DType out : {sf::core::DType::F32, sf::core::DType::BF16, sf::core::DType::F16}) {
                const std::int64_t bs = 64, nblocks = (n + bs - 1) / bs, nbs = 256;
                std::vector<float> absmax(static_cast<std::size_t>(nblocks)), nabs(static_cast<std::size_t>(nblocks / nbs + 1));
                std::vector<std::uint8_t> codes(absmax.size());
                for (auto& a : absmax) a = 0.01f + static_cast<float>(rng() % 1000) * 1e-3f;
                for (auto& a : nabs) a = 0.001f + static_cast<float>(rng() % 100) * 1e-4f;
                for (auto& c : codes) c = static_cast<std::uint8_t>(rng());
                q::Bnb4View v;
                v.packed = packed.data();
                v.code = fp4 ? q::bnb_fp4_code() : q::bnb_nf4_code();
                v.blocksize = bs;
                if (nested) {
                    v.absmax_code = codes.data();
                    v.nested_code = nested_code;
                    v.nested_absmax = nabs.data();
                    v.nested_blocksize = nbs;
                    v.nested_offset = 0.0123f;
                } else {
                    v.absmax = absmax.data();
                }
                v.out_dtype = out;
                run(std::string(fp4 ? "FP4" : "NF4") + (nested ? " double-quant" : "") + " -> " +
                        std::string(sf::core::dtype_name(out)),
                    [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_bnb4(v, a, b, d); },
                    [&](std::int64_t a, std::int64_t b, float* d) { dev.dequant_bnb4(v, a, b, d); });
            }
    std::vector<std::int8_t> cb(static_cast<std::size_t>(n));
    for (auto& x : cb) x = static_cast<std::int8_t>(rng());
    std::vector<float> scb(static_cast<std::size_t>(rows));
    for (auto& x : scb) x = static_cast<float>(rng() % 5000) * 1e-3f;
    run("LLM.int8",
        [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_int8(cb.data(), scb.data(), cols, a, b, d); },
        [&](std::int64_t a, std::int64_t b, float* d) { dev.dequant_int8(cb.data(), scb.data(), cols, a, b, d); });
    std::vector<std::uint8_t> w8(static_cast<std::size_t>(n));
    for (auto& x : w8) x = static_cast<std::uint8_t>(rng());
    const std::int64_t grids[][2] = {{128, 128}, {1, cols}, {rows, cols}, {64, 32}};
    for (const bool e5m2 : {false, true})
        for (const auto& g : grids) {
            std::vector<float> scale(static_cast<std::size_t>(((rows + g[0] - 1) / g[0]) * ((cols + g[1] - 1) / g[1])));
            for (auto& x : scale) x = static_cast<float>(rng() % 9000 + 1) * 1e-4f;
            q::Fp8View v;
            v.w = w8.data();
            v.e5m2 = e5m2;
            v.scale = scale.data();
            v.rows = rows;
            v.cols = cols;
            v.block_rows = g[0];
            v.block_cols = g[1];
            run(std::string(e5m2 ? "FP8 E5M2 " : "FP8 E4M3 ") + std::to_string(g[0]) + "x" + std::to_string(g[1]),
                [&](std::int64_t a, std::int64_t b, float* d) { q::dequant_fp8(v, a, b, d); },
                [&](std::int64_t a, std::int64_t b, float* d) { dev.dequant_fp8(v, a, b, d); });
        }
}

// DoRA: the GPU norm/rescale alone, and the whole GPU merge (delta kernel + norm), are bit-identical to the CPU.
void check_dora(std::size_t budget) {
    for (const bool fifo : {false, true}) {
        const std::int64_t r = 8, out = 300, in = 200;
        std::map<std::string, std::vector<float>> t;
        t["A"] = input(r * in, 11u);
        t["B"] = input(out * r, 12u);
        t["m"] = input(out, 13u);
        sf::lora::Term term;
        term.kind = sf::lora::TermKind::Linear;
        term.a = {0, "adapter", "A", {r, in}};
        term.b = {0, "adapter", "B", {out, r}};
        term.m = {0, "adapter", "m", {out}};
        term.dora = true;
        term.scale = 2.0f;
        term.fan_in_fan_out = fifo;
        const sf::lora::MergeTarget mt{"w", "w", {term}};
        const sf::core::Shape shape = fifo ? sf::core::Shape{in, out} : sf::core::Shape{out, in};
        const sf::lora::LoadF32 load = [&](const sf::lora::TensorRef& ref) { return t.at(ref.key); };
        const sf::lora::DoraF32 gdora = [&](float* v, std::int64_t rr, std::int64_t cc, bool pc, const float* m) {
            return sf::exec::gpu::dora(0, v, rr, cc, pc, m, budget);
        };
        const sf::lora::MatmulF32 gmm = [&](const float* b, const float* a, std::int64_t m, std::int64_t k,
                                            std::int64_t nn, float* c) { sf::exec::gpu::matmul(0, b, a, m, k, nn, c, budget); };
        const std::vector<float> base = input(out * in, 14u);
        std::vector<float> cpu = base, gpu_norm = base, gpu_all = base;
        sf::lora::apply(mt, cpu, shape, load);
        sf::lora::apply(mt, gpu_norm, shape, load, {}, gdora);
        if (!same(cpu, gpu_norm)) fail(std::string("DoRA norm/rescale on the GPU (") + (fifo ? "column" : "row") + " norms) differs from the CPU");
        sf::lora::apply(mt, gpu_all, shape, load, gmm, gdora);
        if (!same(cpu, gpu_all)) fail(std::string("DoRA merge on the GPU (") + (fifo ? "column" : "row") + " norms) differs from the CPU");
        std::printf("DoRA (%s norms, budget %zu): norm/rescale and full GPU merge bit-identical\n", fifo ? "column" : "row", budget);
    }
}

}  // namespace

int main() {
    std::string why;
    if (sf::quant::gpu::device_count(&why) == 0) {
        std::printf("SKIP: no CUDA device (%s): GPU bit-identity not checked on this machine\n", why.c_str());
        return 77;
    }
    const GgmlType types[] = {
        GgmlType::F16, GgmlType::BF16, GgmlType::F32,
        GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::MXFP4,
        GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
        GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::TQ1_0, GgmlType::TQ2_0,
        GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ3_XXS, GgmlType::IQ3_S,
        GgmlType::IQ1_S, GgmlType::IQ1_M,
    };
    // 256 KiB budget: 7 rows per chunk, so 7 chunks per call through the pipeline; default budget: one chunk.
    for (std::size_t budget : {std::size_t{1} << 18, std::size_t{0}}) {
        auto dev = sf::quant::gpu::Device::open(0, budget);
        std::printf("device: %s, budget %zu\n", dev->name().c_str(), budget);
        const std::int64_t n = 1024, nrows = 48;
        const std::vector<float> base = input(n * nrows, 99u);
        std::vector<float> qw(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) qw[static_cast<std::size_t>(i)] = 0.1f + static_cast<float>((i * 13) % 31);
        for (const auto src_dtype : {sf::core::DType::F32, sf::core::DType::F16, sf::core::DType::BF16,
                                     sf::core::DType::F8_E4M3}) {
            // Input layout: the source dtype's bytes, converted to f32 on the CPU and on the GPU.
            std::vector<std::byte> raw(base.size() * sf::core::dtype_size(src_dtype));
            if (src_dtype == sf::core::DType::F8_E4M3) {
                for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<std::byte>((i * 37) % 255 & 0x7e);
            } else {
                sf::formats::from_f32(base.data(), src_dtype, raw.data(), base.size());
            }
            std::vector<float> x(base.size()), xg(base.size());
            sf::formats::to_f32(src_dtype, raw.data(), x.data(), x.size());
            dev->to_f32(src_dtype, raw.data(), xg.data(), xg.size());
            if (std::memcmp(x.data(), xg.data(), x.size() * 4) != 0)
                fail(std::string("to_f32 from ") + std::string(sf::core::dtype_name(src_dtype)));
            for (GgmlType t : types) {
                for (const float* w : {static_cast<const float*>(nullptr), static_cast<const float*>(qw.data())}) {
                    if (!w && sf::quant::quantize_requires_imatrix(t)) continue;
                    const std::string what = sf::quant::type_upper_name(t) + " from " +
                                             std::string(sf::core::dtype_name(src_dtype)) + (w ? " +imatrix" : "");
                    const std::size_t bytes = sf::quant::row_bytes(t, n) * nrows;
                    std::vector<std::uint8_t> cpu(bytes), gpu(bytes, 0xEE);
                    sf::quant::quantize_rows(t, x.data(), cpu.data(), nrows, n, w);
                    dev->quantize_rows(t, x.data(), gpu.data(), nrows, n, w);
                    if (std::memcmp(cpu.data(), gpu.data(), bytes) != 0) {
                        std::size_t first = 0;
                        while (cpu[first] == gpu[first]) ++first;
                        fail(what + ": GPU bytes differ from the CPU's (first at byte " + std::to_string(first) + ")");
                    }
                    std::vector<float> dc(x.size()), dg(x.size(), -7.0f);
                    sf::quant::dequantize_rows(t, cpu.data(), dc.data(), nrows, n);
                    dev->dequantize_rows(t, cpu.data(), dg.data(), nrows, n);
                    if (std::memcmp(dc.data(), dg.data(), dc.size() * 4) != 0) fail(what + ": dequantize differs");
                }
            }
        }
    }
    // Quantized inputs: 1 MiB budget (several chunks per call), default budget (one chunk); too small: usage error.
    for (std::size_t budget : {std::size_t{1} << 20, std::size_t{0}}) {
        auto dev = sf::quant::gpu::Device::open(0, budget);
        check_dequant(*dev);
    }
    try {
        auto dev = sf::quant::gpu::Device::open(0, std::size_t{1} << 16);
        std::vector<float> out(20000);
        std::vector<std::uint8_t> codes(1 << 15), packed(1 << 15);
        std::vector<float> nabs(4), nested_code(256);
        sf::quant::Bnb4View v;
        v.packed = packed.data();
        v.code = sf::quant::bnb_nf4_code();
        v.blocksize = 64;
        v.absmax_code = codes.data();
        v.nested_code = nested_code.data();
        v.nested_absmax = nabs.data();
        v.nested_blocksize = 256;  // a chunk needs 16384 elements (64 KiB of output) > the 64 KiB budget's buffers
        dev->dequant_bnb4(v, 0, 20000, out.data());
        fail("a budget too small for one double-quant chunk was accepted");
    } catch (const sf::core::Error& e) {
        if (e.kind() != sf::core::ErrorKind::Usage) fail(std::string("too-small budget: wrong error: ") + e.what());
    }
    check_dora(std::size_t{1} << 16);  // many chunks of features
    check_dora(0);
    // LoRA delta: the GPU kernel gives delta_f32's bits (row blocks under a 1 MiB budget, and one block).
    for (const std::size_t budget : {std::size_t{1} << 20, std::size_t{0}}) {
        const std::int64_t m = 300, k = 16, nn = 700;
        const std::vector<float> b = input(m * k, 5u), a = input(k * nn, 6u);
        std::vector<float> c_cpu(static_cast<std::size_t>(m * nn)), c_gpu(c_cpu.size());
        sf::lora::delta_f32(b.data(), a.data(), m, k, nn, c_cpu.data());
        sf::exec::gpu::matmul(0, b.data(), a.data(), m, k, nn, c_gpu.data(), budget);
        if (!same(c_cpu, c_gpu)) fail("LoRA delta on the GPU differs from delta_f32 (budget " + std::to_string(budget) + ")");
    }
    if (failures) {
        std::printf("%d failures\n", failures);
        return 1;
    }
    std::printf("gpu.identity: every type and layout, the LoRA delta and the DoRA merge bit-identical to the CPU\n");
    return 0;
}
