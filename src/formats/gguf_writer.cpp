// GGUF writer side: key typing rules, exact layout of header + data, split planning, a small file writer.
#include "gguf_common.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <limits>
#include <unordered_set>

namespace shardforge::formats {
namespace {

using T = GgufValueType;
using core::Error;
using core::ErrorKind;

// Keys under "<arch>." whose type llama.cpp checks (llama.cpp's src/llama-model-loader.cpp, gguf-py/gguf/constants.py).
// Suffix after the first '.'.
struct KeyRule {
    std::string_view suffix;
    GgufValueType type;
    bool per_layer_array;  // an i32/u32 array is accepted too (llama-model-loader get_key_or_arr)
};
constexpr KeyRule arch_rules[] = {
    {"context_length", T::UINT32, false},
    {"embedding_length", T::UINT32, false},
    {"block_count", T::UINT32, false},
    {"feed_forward_length", T::UINT32, true},
    {"attention.head_count", T::UINT32, true},
    {"attention.head_count_kv", T::UINT32, true},
    {"attention.key_length", T::UINT32, false},
    {"attention.value_length", T::UINT32, false},
    {"rope.dimension_count", T::UINT32, false},
    {"vocab_size", T::UINT32, false},
    {"expert_count", T::UINT32, false},
    {"expert_used_count", T::UINT32, false},
    {"expert_feed_forward_length", T::UINT32, false},
    {"expert_shared_feed_forward_length", T::UINT32, false},
    {"expert_group_count", T::UINT32, false},
    {"expert_group_used_count", T::UINT32, false},
    {"expert_gating_func", T::UINT32, false},
    {"attention.sliding_window", T::UINT32, false},
    {"rope.scaling.original_context_length", T::UINT32, false},
    {"attention.layer_norm_rms_epsilon", T::FLOAT32, false},
    {"attention.layer_norm_epsilon", T::FLOAT32, false},
    {"rope.freq_base", T::FLOAT32, false},
    {"rope.freq_base_swa", T::FLOAT32, false},
    {"rope.scaling.factor", T::FLOAT32, false},
    {"rope.scaling.attn_factor", T::FLOAT32, false},
    {"attn_logit_softcapping", T::FLOAT32, false},
    {"final_logit_softcapping", T::FLOAT32, false},
    {"rope.scaling.type", T::STRING, false},
    {"attention.causal", T::BOOL, false},
};

// Fully spelled keys. For ARRAY rows, elem is the element type.
struct FixedRule {
    std::string_view key;
    GgufValueType type;
    GgufValueType elem;
};
constexpr FixedRule fixed_rules[] = {
    {"general.architecture", T::STRING, T::STRING},
    {"general.type", T::STRING, T::STRING},
    {"general.name", T::STRING, T::STRING},
    {"general.file_type", T::UINT32, T::UINT32},
    {"general.quantization_version", T::UINT32, T::UINT32},
    {"general.alignment", T::UINT32, T::UINT32},
    {"split.no", T::UINT16, T::UINT16},
    {"split.count", T::UINT16, T::UINT16},
    {"split.tensors.count", T::INT32, T::INT32},
    {"adapter.type", T::STRING, T::STRING},
    {"adapter.lora.alpha", T::FLOAT32, T::FLOAT32},
    {"adapter.alora.invocation_tokens", T::ARRAY, T::UINT32},
    {"tokenizer.ggml.model", T::STRING, T::STRING},
    {"tokenizer.ggml.pre", T::STRING, T::STRING},
    {"tokenizer.ggml.tokens", T::ARRAY, T::STRING},
    {"tokenizer.ggml.token_type", T::ARRAY, T::INT32},
    {"tokenizer.ggml.scores", T::ARRAY, T::FLOAT32},
    {"tokenizer.ggml.merges", T::ARRAY, T::STRING},
    {"tokenizer.ggml.add_bos_token", T::BOOL, T::BOOL},
    {"tokenizer.ggml.add_eos_token", T::BOOL, T::BOOL},
    {"tokenizer.ggml.add_sep_token", T::BOOL, T::BOOL},
    {"tokenizer.ggml.add_space_prefix", T::BOOL, T::BOOL},
    {"tokenizer.ggml.remove_extra_whitespaces", T::BOOL, T::BOOL},
    {"tokenizer.chat_template", T::STRING, T::STRING},
};

bool ends_with(std::string_view s, std::string_view suf) {
    return s.size() >= suf.size() && s.substr(s.size() - suf.size()) == suf;
}

const FixedRule* fixed_rule(std::string_view key) {
    for (const auto& r : fixed_rules)
        if (r.key == key) return &r;
    return nullptr;
}

const KeyRule* arch_rule(std::string_view key) {
    const auto dot = key.find('.');
    if (dot == std::string_view::npos || dot == 0) return nullptr;
    const auto prefix = key.substr(0, dot);
    if (prefix == "general" || prefix == "tokenizer" || prefix == "split" || prefix == "adapter") return nullptr;
    const auto suffix = key.substr(dot + 1);
    for (const auto& r : arch_rules)
        if (r.suffix == suffix) return &r;
    return nullptr;
}

bool is_token_id_key(std::string_view key) {
    return key.substr(0, 15) == "tokenizer.ggml." && ends_with(key, "_token_id");
}

std::string type_str(const GgufValue& v) {
    if (v.is_array()) return core::cat("ARRAY of ", gguf_type_name(v.elem_type));
    return std::string(gguf_type_name(v.type));
}

// A GgufValue's fields must agree with its type (the factories guarantee it; hand-built ones may not).
bool consistent(const GgufValue& v) {
    const auto id = static_cast<std::uint32_t>(v.type);
    if (!detail::valid_value_type(id)) return false;
    if (v.type == T::STRING) return v.raw.empty() && v.strs.empty();
    if (v.type == T::ARRAY) {
        if (!detail::valid_value_type(static_cast<std::uint32_t>(v.elem_type)) || v.elem_type == T::ARRAY) return false;
        if (v.elem_type == T::STRING) return v.raw.empty() && v.str.empty();
        const std::size_t es = gguf_type_size(v.elem_type);
        return v.strs.empty() && v.str.empty() && v.raw.size() % es == 0;
    }
    return v.str.empty() && v.strs.empty() && v.raw.size() == gguf_type_size(v.type);
}

void put_value(std::string& out, const GgufValue& v) {
    detail::put<std::uint32_t>(out, static_cast<std::uint32_t>(v.type));
    if (v.type == T::STRING) {
        detail::put_str(out, v.str);
    } else if (v.type == T::ARRAY) {
        detail::put<std::uint32_t>(out, static_cast<std::uint32_t>(v.elem_type));
        detail::put<std::uint64_t>(out, v.count());
        if (v.elem_type == T::STRING) {
            for (const auto& s : v.strs) detail::put_str(out, s);
        } else {
            out.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
        }
    } else {
        out.append(reinterpret_cast<const char*>(v.raw.data()), v.raw.size());
    }
}

}  // namespace

std::optional<GgufValueType> gguf_expected_key_type(std::string_view key) {
    if (const auto* f = fixed_rule(key)) return f->type;
    if (is_token_id_key(key)) return T::UINT32;
    if (const auto* a = arch_rule(key)) return a->type;
    return std::nullopt;
}

bool gguf_key_type_ok(std::string_view key, const GgufValue& v) {
    if (const auto* f = fixed_rule(key)) {
        if (v.type != f->type) return false;
        return f->type != T::ARRAY || v.elem_type == f->elem;
    }
    if (is_token_id_key(key)) return v.type == T::UINT32;
    if (const auto* a = arch_rule(key)) {
        if (v.type == a->type) return true;
        return a->per_layer_array && v.is_array() && (v.elem_type == T::INT32 || v.elem_type == T::UINT32);
    }
    return true;
}

std::uint64_t gguf_tensor_nbytes(const std::vector<std::int64_t>& ne, quant::GgmlType type) {
    const auto& tr = quant::traits(type);
    std::uint64_t n_rows = 1;
    for (std::size_t i = 1; i < ne.size(); ++i) {
        const auto d = static_cast<std::uint64_t>(ne[i]);
        if (ne[i] < 0 || (d != 0 && n_rows > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / d))
            throw Error(ErrorKind::BadInput, "", "", core::cat("tensor shape ", core::shape_str(ne), " overflows"));
        n_rows *= d;
    }
    const std::uint64_t ne0 = ne.empty() ? 1 : static_cast<std::uint64_t>(ne[0]);
    const std::uint64_t row = ne0 / static_cast<std::uint64_t>(tr.block_elems) * tr.block_bytes;
    if (ne0 != 0 && n_rows > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / ne0)
        throw Error(ErrorKind::BadInput, "", "", core::cat("tensor shape ", core::shape_str(ne), " overflows"));
    if (row != 0 && n_rows > std::numeric_limits<std::uint64_t>::max() / 2 / row)
        throw Error(ErrorKind::BadInput, "", "", core::cat("tensor shape ", core::shape_str(ne), " overflows"));
    return row * n_rows;
}

namespace {

// layout_gguf collects every problem, then fails once.
struct Problems {
    struct Problem {
        std::string tensor, why;
    };
    std::vector<Problem> list;
    void add(std::string tensor, std::string why) { list.push_back({std::move(tensor), std::move(why)}); }

    // One line: the first problem, then the others in brief.
    void throw_if_any() const {
        if (list.empty()) return;
        std::string why = "GGUF layout: " + list.front().why;
        if (list.size() > 1) why += core::cat(" (and ", list.size() - 1, " more: ");
        for (std::size_t i = 1; i < list.size(); ++i) {
            const auto& p = list[i];
            why += (i > 1 ? "; " : "") + (p.tensor.empty() ? p.why : core::cat("tensor '", p.tensor, "': ", p.why));
        }
        if (list.size() > 1) why += ")";
        throw Error(ErrorKind::BadInput, "", list.front().tensor, why);
    }
};

// Keys: non-empty, unique, consistent values of the type llama.cpp expects, the default alignment only.
void check_kvs(const std::vector<GgufKV>& kvs, Problems& problems) {
    std::unordered_set<std::string_view> keys;
    for (const auto& kv : kvs) {
        if (kv.key.empty()) problems.add("", "empty GGUF key");
        else if (!keys.insert(kv.key).second) problems.add("", core::cat("duplicate GGUF key '", kv.key, "'"));
        if (!consistent(kv.value)) {
            problems.add("", core::cat("key '", kv.key, "': inconsistent GgufValue (build it with a factory)"));
            continue;
        }
        if (!gguf_key_type_ok(kv.key, kv.value)) {
            const auto want = gguf_expected_key_type(kv.key);
            problems.add("", core::cat("key '", kv.key, "' must be ", want ? gguf_type_name(*want) : "?",
                                       " (llama.cpp checks key types strictly), found ", type_str(kv.value)));
        }
        if (kv.key == "general.alignment" && kv.value.type == T::UINT32 && kv.value.as_u64() != gguf_default_alignment)
            problems.add("", core::cat("general.alignment must be 32, found ", kv.value.as_u64()));
    }
}

// One tensor declaration: its data bytes, or 0 with a problem recorded.
std::uint64_t checked_nbytes(const GgufTensorDecl& t, std::unordered_set<std::string_view>& names, Problems& problems) {
    if (t.name.size() >= detail::ggml_max_name)
        problems.add(t.name, core::cat("name is ", t.name.size(), " bytes; GGUF allows at most 63"));
    if (!names.insert(t.name).second) problems.add(t.name, "duplicate tensor name");
    if (t.ne.size() > detail::ggml_max_dims) {
        problems.add(t.name, core::cat("has ", t.ne.size(), " dimensions; GGUF allows at most 4"));
        return 0;
    }
    if (!quant::type_traits(static_cast<std::uint32_t>(t.type))) {
        problems.add(t.name, core::cat("unknown ggml type id ", static_cast<std::uint32_t>(t.type)));
        return 0;
    }
    if (std::any_of(t.ne.begin(), t.ne.end(), [](std::int64_t d) { return d < 0; })) {
        problems.add(t.name, core::cat("negative dimension in ne ", core::shape_str(t.ne)));
        return 0;
    }
    const auto& tr = quant::traits(t.type);
    const std::int64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
    if (ne0 % tr.block_elems != 0) {
        problems.add(t.name, core::cat("ne[0] = ", ne0, " is not a multiple of the ", tr.name, " block size ",
                                       tr.block_elems));
        return 0;
    }
    try {
        return gguf_tensor_nbytes(t.ne, t.type);
    } catch (const Error& e) {
        problems.add(t.name, e.why());
        return 0;
    }
}

// A tensor info record: name, dimensions, type, relative offset. ggml_n_dims drops trailing 1s (at least 1 stays);
// gguf-py's writer keeps all of them (keep_dims).
void put_tensor_info(std::string& h, const GgufTensorDecl& t, std::uint64_t rel) {
    std::size_t n_dims = t.ne.size();
    while (!t.keep_dims && n_dims > 1 && t.ne[n_dims - 1] == 1) --n_dims;
    if (n_dims == 0) n_dims = 1;
    detail::put_str(h, t.name);
    detail::put<std::uint32_t>(h, static_cast<std::uint32_t>(n_dims));
    for (std::size_t d = 0; d < n_dims; ++d) detail::put<std::int64_t>(h, d < t.ne.size() ? t.ne[d] : 1);
    detail::put<std::int32_t>(h, static_cast<std::int32_t>(t.type));
    detail::put<std::uint64_t>(h, rel);
}

}  // namespace

GgufLayout layout_gguf(const std::vector<GgufKV>& kvs, const std::vector<GgufTensorDecl>& tensors) {
    Problems problems;
    check_kvs(kvs, problems);
    std::unordered_set<std::string_view> names;
    std::vector<std::uint64_t> nbytes(tensors.size(), 0);
    for (std::size_t i = 0; i < tensors.size(); ++i) nbytes[i] = checked_nbytes(tensors[i], names, problems);
    problems.throw_if_any();

    GgufLayout out;
    std::string& h = out.header;
    h.append(detail::gguf_magic, 4);
    detail::put<std::uint32_t>(h, detail::gguf_version);
    detail::put<std::int64_t>(h, static_cast<std::int64_t>(tensors.size()));
    detail::put<std::int64_t>(h, static_cast<std::int64_t>(kvs.size()));
    for (const auto& kv : kvs) {
        detail::put_str(h, kv.key);
        put_value(h, kv.value);
    }
    std::uint64_t rel = 0;
    std::vector<std::uint64_t> rel_offsets(tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        put_tensor_info(h, tensors[i], rel);
        rel_offsets[i] = rel;
        rel += detail::pad_to(nbytes[i], gguf_default_alignment);
    }
    h.resize(detail::pad_to(h.size(), gguf_default_alignment), '\0');
    out.data_start = h.size();
    out.offsets.resize(tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) out.offsets[i] = out.data_start + rel_offsets[i];
    out.nbytes = std::move(nbytes);
    out.file_size = out.data_start + rel;
    return out;
}

std::vector<std::uint32_t> plan_gguf_split(const std::vector<std::uint64_t>& nbytes, std::uint64_t max_bytes,
                                           std::uint32_t max_tensors) {
    std::vector<std::uint32_t> shard(nbytes.size(), 0);
    std::uint32_t cur = 0;
    std::uint64_t n_in = 0, bytes_in = 0;
    for (std::size_t i = 0; i < nbytes.size(); ++i) {
        const std::uint64_t padded = detail::pad_to(nbytes[i], gguf_default_alignment);
        const bool full_count = max_tensors != 0 && n_in >= max_tensors;
        const bool full_size = max_bytes != 0 && (bytes_in + padded > max_bytes || bytes_in + padded < bytes_in);
        if (n_in > 0 && (full_count || full_size)) {
            ++cur;
            n_in = 0;
            bytes_in = 0;
        }
        shard[i] = cur;
        ++n_in;
        bytes_in += padded;
    }
    return shard;
}

std::string gguf_split_name(std::string_view stem, std::uint32_t i, std::uint32_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "-%05u-of-%05u.gguf", static_cast<unsigned>(i + 1), static_cast<unsigned>(n));
    return std::string(stem) + buf;
}

std::vector<GgufKV> gguf_split_kvs(std::uint32_t i, std::uint32_t n, std::int32_t total_tensors) {
    if (n == 0 || n > 0xffffu || i >= n)
        throw Error(ErrorKind::Usage, "", "", core::cat("GGUF split: shard ", i, " of ", n,
                                                      " (split.count is a u16: at most 65535 shards)"));
    return {
        {"split.no", GgufValue::u16(static_cast<std::uint16_t>(i))},
        {"split.count", GgufValue::u16(static_cast<std::uint16_t>(n))},
        {"split.tensors.count", GgufValue::i32(total_tensors)},
    };
}

void write_gguf(const std::filesystem::path& path, const std::vector<GgufKV>& kvs,
                const std::vector<GgufTensorDecl>& tensors, const std::vector<std::span<const std::byte>>& data) {
    const GgufLayout lay = layout_gguf(kvs, tensors);
    SF_CHECK(data.size() == tensors.size(), "write_gguf: one data span per tensor");
    for (std::size_t i = 0; i < tensors.size(); ++i)
        if (data[i].size() != lay.nbytes[i])
            throw Error(ErrorKind::Internal, path.string(), tensors[i].name,
                        core::cat("data has ", data[i].size(), " bytes, expected ", lay.nbytes[i]));
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw Error(ErrorKind::Io, path.string(), "", core::cat("cannot create: ", std::strerror(errno)));
    f.write(lay.header.data(), static_cast<std::streamsize>(lay.header.size()));
    static const char zeros[gguf_default_alignment] = {};
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        f.write(reinterpret_cast<const char*>(data[i].data()), static_cast<std::streamsize>(data[i].size()));
        const auto pad = detail::pad_to(lay.nbytes[i], gguf_default_alignment) - lay.nbytes[i];
        f.write(zeros, static_cast<std::streamsize>(pad));
    }
    f.flush();
    if (!f) throw Error(ErrorKind::Io, path.string(), "", core::cat("write failed: ", std::strerror(errno)));
}

}  // namespace shardforge::formats
