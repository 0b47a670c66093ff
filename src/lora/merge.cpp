// The merge math (PEFT's tuners/lora/layer.py get_delta_weight, dora.py): the f32 delta in the defined order of
// delta_f32, one f32 add, DoRA renormalisation.
#include <shardforge/lora.hpp>

#include "kernels/dora.hpp"

#include <algorithm>
#include <cmath>

namespace shardforge::lora {

namespace {
using core::Error;
using core::ErrorKind;

std::vector<float> load_checked(const LoadF32& load, const TensorRef& r) {
    std::vector<float> v = load(r);
    if (static_cast<std::int64_t>(v.size()) != core::numel(r.shape))
        throw Error(ErrorKind::Internal, r.file, r.key,
                    core::cat("loader returned ", v.size(), " values for shape ", core::shape_str(r.shape)));
    for (std::size_t i = 0; i < v.size(); ++i)
        if (!std::isfinite(v[i]))
            throw Error(ErrorKind::BadInput, r.file, r.key, core::cat("non-finite value ", v[i], " at element ", i));
    return v;
}

// C (m x n) = B (m x k) @ A (k x n), all row-major and contiguous: delta_f32, or the device's kernel of the same
// order.
std::vector<float> matmul(const float* b, const float* a, std::int64_t m, std::int64_t k, std::int64_t n,
                          const MatmulF32& custom) {
    std::vector<float> c(static_cast<std::size_t>(m * n), 0.0f);
    if (m == 0 || n == 0) return c;
    if (custom)
        custom(b, a, m, k, n, c.data());
    else
        delta_f32(b, a, m, k, n, c.data());
    return c;
}

// The CPU DoRA renormalisation (lora::DoraF32's contract): features in order, stopping at a zero norm.
std::int64_t dora_cpu(float* v, std::int64_t rows, std::int64_t cols, bool per_col, const float* m) {
    const std::int64_t n_feat = per_col ? cols : rows, n_red = per_col ? rows : cols;
    for (std::int64_t f = 0; f < n_feat; ++f)
        if (kernels::dora_feature(per_col ? v + f : v + f * cols, n_red, per_col ? cols : 1, m[f]) == 0.0f) return f;
    return -1;
}

std::int64_t run_dora(const DoraF32& dora, float* v, std::int64_t rows, std::int64_t cols, bool per_col,
                      const float* m) {
    return dora ? dora(v, rows, cols, per_col, m) : dora_cpu(v, rows, cols, per_col, m);
}

// w += scale * delta for a Linear / Embedding term, delta in W's layout: (B @ A), transposed for Embedding and
// fan_in_fan_out. Same arithmetic as numpy's `w + (B @ A)[.T] * s`; one extra W-sized buffer (the GEMM result).
void add_delta_2d(const Term& t, const std::vector<float>& A, const std::vector<float>& B, std::span<float> w,
                  std::int64_t rows, std::int64_t cols, const MatmulF32& mm) {
    const std::int64_t r = t.a.shape[0];
    const std::int64_t n_out = t.b.shape[0];
    const std::int64_t n_in = core::numel(t.a.shape) / r;
    const std::vector<float> c = matmul(B.data(), A.data(), n_out, r, n_in, mm);  // (out, in); Embedding: (dim, vocab)
    const bool transpose = t.kind == TermKind::Embedding || t.fan_in_fan_out;
    SF_CHECK(rows * cols == n_out * n_in, "delta size checked by resolve()");
    if (!transpose) {
        for (std::size_t i = 0; i < c.size(); ++i) w[i] = w[i] + c[i] * t.scale;
    } else {  // W is (in, out): delta[i, o] = c[o, i]
        for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t o = 0; o < cols; ++o) {
                float& x = w[static_cast<std::size_t>(i * cols + o)];
                x = x + c[static_cast<std::size_t>(o * rows + i)] * t.scale;
            }
    }
}

void apply_delta(const MergeTarget& mt, const Term& t, std::span<float> w, const core::Shape& shape,
                 const LoadF32& load, const MatmulF32& mm, const DoraF32& dora) {
    const std::vector<float> A = load_checked(load, t.a), B = load_checked(load, t.b);
    if (t.kind == TermKind::Param3D) {
        const std::int64_t e_n = shape[0], d1 = shape[1], d2 = shape[2];
        const std::int64_t r = t.rank, n_in = t.a.shape[1], n_out = t.b.shape[0], rE = t.b.shape[1];
        SF_CHECK(r * e_n == rE && t.n_experts == e_n, "Param3D shapes checked by resolve()");
        std::vector<float> be(static_cast<std::size_t>(n_out * r));
        for (std::int64_t e = 0; e < e_n; ++e) {
            // A_e = rows e*r .. e*r+r-1 of A (expert-major); B_e[:, k] = B[:, k*E + e] (rank-major).
            for (std::int64_t o = 0; o < n_out; ++o)
                for (std::int64_t k = 0; k < r; ++k)
                    be[static_cast<std::size_t>(o * r + k)] = B[static_cast<std::size_t>(o * rE + k * e_n + e)];
            const std::vector<float> c = matmul(be.data(), A.data() + e * r * n_in, n_out, r, n_in, mm);
            float* we = w.data() + e * d1 * d2;
            if (!t.transposed) {
                for (std::int64_t i = 0; i < n_out * n_in; ++i) we[i] = we[i] + c[static_cast<std::size_t>(i)] * t.scale;
            } else {  // (in, out)
                for (std::int64_t i = 0; i < n_in; ++i)
                    for (std::int64_t o = 0; o < n_out; ++o)
                        we[i * n_out + o] = we[i * n_out + o] + c[static_cast<std::size_t>(o * n_in + i)] * t.scale;
            }
        }
        return;
    }
    const std::int64_t rows = shape[0], cols = core::numel(shape) / std::max<std::int64_t>(rows, 1);
    add_delta_2d(t, A, B, w, rows, cols, mm);
    if (!t.dora) return;
    // DoRA: V = W + dW (now in w); norm per output feature: rows of V, or columns when the output index is the
    // column (fan_in_fan_out, and embeddings whose output is the embedding dim).
    const std::vector<float> m = load_checked(load, t.m);
    const bool per_col = t.kind == TermKind::Embedding || t.fan_in_fan_out;
    const std::int64_t bad = run_dora(dora, w.data(), rows, cols, per_col, m.data());
    if (bad >= 0)
        throw Error(ErrorKind::BadInput, t.m.file, t.m.key,
                    core::cat("DoRA: weight norm of output feature ", bad, " of '", mt.out_name,
                              "' is zero (W + dW vanishes); PEFT would divide by zero"));
}
}  // namespace

std::string_view to_string(TermKind k) noexcept {
    switch (k) {
        case TermKind::Replace: return "replace";
        case TermKind::Linear: return "linear";
        case TermKind::Embedding: return "embedding";
        case TermKind::Param3D: return "param3d";
        case TermKind::BiasDelta: return "bias_delta";
    }
    return "?";
}

void apply(const MergeTarget& t, std::span<float> w, const core::Shape& shape, const LoadF32& load,
           const MatmulF32& mm, const DoraF32& dora) {
    SF_CHECK(static_cast<std::int64_t>(w.size()) == core::numel(shape), "apply(): buffer size != numel(shape)");
    for (const Term& term : t.terms) {
        switch (term.kind) {
            case TermKind::Replace: {
                const std::vector<float> v = load_checked(load, term.a);
                if (v.size() != w.size())
                    throw Error(ErrorKind::BadInput, term.a.file, term.a.key,
                                core::cat("full tensor ", core::shape_str(term.a.shape), " does not fit '", t.out_name,
                                          "' ", core::shape_str(shape)));
                std::copy(v.begin(), v.end(), w.begin());
                break;
            }
            case TermKind::BiasDelta: {
                const std::vector<float> v = load_checked(load, term.a);
                if (v.size() != w.size())
                    throw Error(ErrorKind::BadInput, term.a.file, term.a.key,
                                core::cat("lora_B.bias ", core::shape_str(term.a.shape), " does not fit '", t.out_name,
                                          "' ", core::shape_str(shape)));
                for (std::size_t i = 0; i < w.size(); ++i) w[i] = w[i] + v[i] * term.scale;
                break;
            }
            case TermKind::Linear:
            case TermKind::Embedding:
            case TermKind::Param3D: apply_delta(t, term, w, shape, load, mm, dora); break;
        }
        for (std::size_t i = 0; i < w.size(); ++i)
            if (!std::isfinite(w[i]))
                throw Error(ErrorKind::BadInput, term.a.file, t.out_name,
                            core::cat("merged value is ", w[i], " at element ", i, " after applying '", term.a.key,
                                      "' (", to_string(term.kind), ")"));
    }
}

}  // namespace shardforge::lora

namespace shardforge::lora {

bool row_blockable(const MergeTarget& t) noexcept {
    for (const Term& term : t.terms)
        if (term.dora && (term.kind == TermKind::Embedding || term.fan_in_fan_out)) return false;
    return true;
}

bool expert_blockable(const MergeTarget& t) noexcept {
    return std::all_of(t.terms.begin(), t.terms.end(), [](const Term& term) {
        return !term.dora && (term.kind == TermKind::Param3D || term.kind == TermKind::Replace);
    });
}

double merge_flops(const MergeTarget& t) noexcept {
    double f = 0;
    for (const Term& term : t.terms)
        if (term.kind == TermKind::Linear || term.kind == TermKind::Embedding || term.kind == TermKind::Param3D)
            f += 2.0 * static_cast<double>(core::numel(term.a.shape)) * static_cast<double>(term.b.shape.empty() ? 1 : term.b.shape[0]);
    return f;
}

void apply_rows(const MergeTarget& t, std::span<float> w, const core::Shape& shape, std::int64_t r0, std::int64_t r1,
                const LoadF32& load, const MatmulF32& mm, const DoraF32& dora) {
    const std::int64_t rows = shape.empty() ? 1 : shape[0];
    const std::int64_t cols = rows == 0 ? 0 : core::numel(shape) / rows;  // elements per dim-0 row
    SF_CHECK(0 <= r0 && r0 <= r1 && r1 <= rows && static_cast<std::int64_t>(w.size()) == (r1 - r0) * cols,
             "apply_rows(): buffer size != rows x row length");
    const std::int64_t k = r1 - r0;
    const auto first = static_cast<std::size_t>(r0 * cols);
    for (const Term& term : t.terms) {
        switch (term.kind) {
            case TermKind::Replace:
            case TermKind::BiasDelta: {
                const std::vector<float> v = load_checked(load, term.a);
                if (static_cast<std::int64_t>(v.size()) != core::numel(shape))
                    throw Error(ErrorKind::BadInput, term.a.file, term.a.key,
                                core::cat("tensor ", core::shape_str(term.a.shape), " does not fit '", t.out_name,
                                          "' ", core::shape_str(shape)));
                for (std::size_t i = 0; i < w.size(); ++i)
                    w[i] = term.kind == TermKind::Replace ? v[first + i] : w[i] + v[first + i] * term.scale;
                break;
            }
            case TermKind::Param3D: {
                // Rows of dim 0 are experts: apply the full merge to each expert of the block.
                const std::vector<float> A = load_checked(load, term.a), B = load_checked(load, term.b);
                const std::int64_t r = term.rank, n_in = term.a.shape[1], n_out = term.b.shape[0], rE = term.b.shape[1];
                std::vector<float> be(static_cast<std::size_t>(n_out * r));
                for (std::int64_t e = r0; e < r1; ++e) {
                    for (std::int64_t o = 0; o < n_out; ++o)
                        for (std::int64_t q = 0; q < r; ++q)
                            be[static_cast<std::size_t>(o * r + q)] = B[static_cast<std::size_t>(o * rE + q * shape[0] + e)];
                    const std::vector<float> c = matmul(be.data(), A.data() + e * r * n_in, n_out, r, n_in, mm);
                    float* we = w.data() + (e - r0) * cols;
                    if (!term.transposed) {
                        for (std::int64_t i = 0; i < n_out * n_in; ++i)
                            we[i] = we[i] + c[static_cast<std::size_t>(i)] * term.scale;
                    } else {
                        for (std::int64_t i = 0; i < n_in; ++i)
                            for (std::int64_t o = 0; o < n_out; ++o)
                                we[i * n_out + o] = we[i * n_out + o] + c[static_cast<std::size_t>(o * n_in + i)] * term.scale;
                    }
                }
                break;
            }
            case TermKind::Linear:
            case TermKind::Embedding: {
                const std::vector<float> A = load_checked(load, term.a), B = load_checked(load, term.b);
                const std::int64_t r = term.a.shape[0];
                const std::int64_t n_in = core::numel(term.a.shape) / r;
                const bool transpose = term.kind == TermKind::Embedding || term.fan_in_fan_out;
                if (!transpose) {  // rows are output features: B[r0:r1] @ A
                    const std::vector<float> c = matmul(B.data() + r0 * r, A.data(), k, r, n_in, mm);
                    for (std::size_t i = 0; i < c.size(); ++i) w[i] = w[i] + c[i] * term.scale;
                } else {  // W is (in, out), rows are input features: (B @ A[:, r0:r1])^T
                    const std::int64_t n_out = term.b.shape[0];
                    std::vector<float> a_cols(static_cast<std::size_t>(r * k));
                    for (std::int64_t q = 0; q < r; ++q)
                        std::copy(A.begin() + q * n_in + r0, A.begin() + q * n_in + r1, a_cols.begin() + q * k);
                    const std::vector<float> c = matmul(B.data(), a_cols.data(), n_out, r, k, mm);
                    for (std::int64_t i = 0; i < k; ++i)
                        for (std::int64_t o = 0; o < cols; ++o) {
                            float& x = w[static_cast<std::size_t>(i * cols + o)];
                            x = x + c[static_cast<std::size_t>(o * k + i)] * term.scale;
                        }
                }
                if (!term.dora) break;
                SF_CHECK(!transpose, "apply_rows(): DoRA with per-column norms cannot be split by rows");
                const std::vector<float> m = load_checked(load, term.m);
                const std::int64_t bad = run_dora(dora, w.data(), k, cols, false, m.data() + r0);
                if (bad >= 0)
                    throw Error(ErrorKind::BadInput, term.m.file, term.m.key,
                                core::cat("DoRA: weight norm of output feature ", r0 + bad, " of '", t.out_name,
                                          "' is zero (W + dW vanishes); PEFT would divide by zero"));
                break;
            }
        }
        for (std::size_t i = 0; i < w.size(); ++i)
            if (!std::isfinite(w[i]))
                throw Error(ErrorKind::BadInput, term.a.file, t.out_name,
                            core::cat("merged value is ", w[i], " at element ", first + i, " after applying '",
                                      term.a.key, "' (", to_string(term.kind), ")"));
    }
}

}  // namespace shardforge::lora
