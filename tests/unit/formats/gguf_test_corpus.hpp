// Hand-built GGUF bytes for the GGUF tests: a byte builder that knows nothing of our writer, a hand-derived minimal
// worked example, and the bad-input corpus (each case says whether ggml's own reader must reject it too).
#pragma once
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace gguf_test {

struct Bytes {
    std::string b;
    Bytes& raw(const std::string& s) { b += s; return *this; }
    template <class V>
    Bytes& num(V v) {
        char t[sizeof(V)];
        std::memcpy(t, &v, sizeof(V));
        b.append(t, sizeof(V));
        return *this;
    }
    Bytes& u8(std::uint8_t v) { return num(v); }
    Bytes& u16(std::uint16_t v) { return num(v); }
    Bytes& u32(std::uint32_t v) { return num(v); }
    Bytes& i32(std::int32_t v) { return num(v); }
    Bytes& u64(std::uint64_t v) { return num(v); }
    Bytes& i64(std::int64_t v) { return num(v); }
    Bytes& f32(float v) { return num(v); }
    Bytes& str(const std::string& s) { u64(s.size()); return raw(s); }
    Bytes& pad(std::size_t align) { b.resize((b.size() + align - 1) / align * align, '\0'); return *this; }
    Bytes& zeros(std::size_t n) { b.append(n, '\0'); return *this; }
    std::vector<std::byte> bytes() const {
        std::vector<std::byte> v(b.size());
        if (!b.empty()) std::memcpy(v.data(), b.data(), b.size());
        return v;
    }
};

// Parses our hex notation: groups of hex digits and "quoted" ASCII strings, separated by spaces.
inline std::string from_spec_hex(const std::string& text) {
    std::string out;
    for (std::size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (c == '"') {
            const auto j = text.find('"', i + 1);
            out += text.substr(i + 1, j - i - 1);
            i = j + 1;
        } else if (std::isxdigit(static_cast<unsigned char>(c))) {
            out += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
            i += 2;
        } else {
            ++i;
        }
    }
    return out;
}

// The minimal file, derived by hand from ggml/src/gguf.cpp's layout (header up to the end of the tensor infos).
inline std::string spec_example_header_unpadded() {
    return from_spec_hex(
        "47475546 03000000 02000000 00000000 03000000 00000000 "
        "14000000 00000000 \"general.architecture\" 08000000 05000000 00000000 \"llama\" "
        "11000000 00000000 \"llama.block_count\" 04000000 02000000 "
        "15000000 00000000 \"tokenizer.ggml.tokens\" 09000000 08000000 02000000 00000000 "
        "01000000 00000000 \"a\" 02000000 00000000 \"bc\" "
        "01000000 00000000 \"w\" 02000000 03000000 00000000 02000000 00000000 00000000 00000000 00000000 "
        "01000000 00000000 \"b\" 01000000 01000000 00000000 00000000 20000000 00000000");
}

// The whole minimal file: header zero-padded to 0x100, w data (24 B: floats 1..6) + 8 pad, b data (4 B: 7) at
// 0x120 + 28 pad, EOF 0x140.
inline Bytes spec_example_file() {
    Bytes f;
    f.raw(spec_example_header_unpadded()).pad(32);
    for (int i = 1; i <= 6; ++i) f.f32(static_cast<float>(i));
    f.zeros(8).f32(7.0f).zeros(28);
    return f;
}

// A file with one KV and the tensors given as (name, ne, type, offset, nbytes); data zero-filled, padded 32.
struct TInfo {
    std::string name;
    std::vector<std::int64_t> ne;
    std::int32_t type;
    std::uint64_t offset;
    std::size_t nbytes;
};
inline Bytes file_with(const std::vector<TInfo>& ts, Bytes kvs = Bytes{}, std::int64_t n_kv = -1) {
    Bytes f;
    f.raw("GGUF").u32(3).i64(static_cast<std::int64_t>(ts.size()));
    if (n_kv < 0) {
        f.i64(1).str("general.architecture").u32(8).str("llama");
    } else {
        f.i64(n_kv).raw(kvs.b);
    }
    for (const auto& t : ts) {
        f.str(t.name).u32(static_cast<std::uint32_t>(t.ne.size()));
        for (auto d : t.ne) f.i64(d);
        f.i32(t.type).u64(t.offset);
    }
    f.pad(32);
    for (const auto& t : ts) f.zeros(t.nbytes).pad(32);
    return f;
}

struct BadCase {
    std::string name;      // what is wrong
    Bytes file;
    bool ggml_rejects;     // ggml's gguf_init_from_file (no_alloc, no ctx) rejects it as well
};

inline std::vector<BadCase> bad_corpus() {
    std::vector<BadCase> c;
    const Bytes good = spec_example_file();
    auto patched = [&](std::size_t at, const std::string& with) {
        Bytes b = good;
        b.b.replace(at, with.size(), with);
        return b;
    };
    auto le32 = [](std::uint32_t v) { return Bytes{}.u32(v).b; };
    c.push_back({"bad magic", patched(0, "GGUG"), true});
    c.push_back({"version 0", patched(4, le32(0)), true});
    c.push_back({"version 1", patched(4, le32(1)), true});
    c.push_back({"version 4", patched(4, le32(4)), true});
    c.push_back({"byte-swapped version", patched(4, le32(0x03000000u)), true});
    c.push_back({"huge n_tensors", patched(8, Bytes{}.i64(std::int64_t{1} << 60).b), true});
    c.push_back({"huge n_kv", patched(16, Bytes{}.i64(std::int64_t{1} << 61).b), true});
    c.push_back({"negative n_kv", patched(16, Bytes{}.i64(-1).b), true});
    // key string length of 2^40 bytes (beyond the 1 GiB cap) and of 1 GiB - 1 (within the cap, beyond the file)
    c.push_back({"huge key length", patched(24, Bytes{}.u64(std::uint64_t{1} << 40).b), true});
    c.push_back({"key length past EOF", patched(24, Bytes{}.u64((std::uint64_t{1} << 30) - 1).b), true});
    // tokenizer.ggml.tokens count: at 24+45+33 + 8+21 + 4+4 = 139
    c.push_back({"huge array count", patched(139, Bytes{}.u64(std::uint64_t{1} << 31).b), true});
    c.push_back({"array count past EOF", patched(139, Bytes{}.u64(std::uint64_t{1} << 29).b), true});
    // array element string length 2^40 (first element "a" at 147)
    c.push_back({"huge array string length", patched(147, Bytes{}.u64(std::uint64_t{1} << 40).b), true});
    // the value type of llama.block_count (at 24+45 + 8+17 = 94)
    c.push_back({"invalid value type 13", patched(94, le32(13)), true});
    {
        Bytes kv;
        kv.str("a.b").u32(9).u32(9).u64(1).u32(4).u64(1).u32(7);  // array of arrays of u32
        c.push_back({"nested array", file_with({}, kv, 1), true});
    }
    {
        Bytes kv;
        kv.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
        c.push_back({"duplicate key", file_with({}, kv, 2), true});
    }
    {
        Bytes kv;
        kv.str("general.alignment").u32(5).i32(32);
        c.push_back({"alignment of type i32", file_with({{"t", {32}, 0, 0, 128}}, kv, 1), true});
    }
    {
        Bytes kv;
        kv.str("general.alignment").u32(4).u32(48);
        c.push_back({"alignment not a power of two", file_with({{"t", {32}, 0, 0, 128}}, kv, 1), true});
    }
    {
        Bytes kv;
        kv.str("general.alignment").u32(4).u32(0);
        c.push_back({"alignment zero", file_with({{"t", {32}, 0, 0, 128}}, kv, 1), true});
    }
    c.push_back({"duplicate tensor name", file_with({{"w", {8}, 0, 0, 32}, {"w", {8}, 0, 32, 32}}), true});
    c.push_back({"64-byte tensor name", file_with({{std::string(64, 'n'), {8}, 0, 0, 32}}), true});
    c.push_back({"5 dimensions", file_with({{"t", {8, 1, 1, 1, 1}, 0, 0, 32}}), true});
    c.push_back({"negative dimension", file_with({{"t", {8, -1}, 0, 0, 32}}), true});
    c.push_back({"removed type id 4", file_with({{"t", {32}, 4, 0, 64}}), true});
    c.push_back({"type id 43 (>= GGML_TYPE_COUNT)", file_with({{"t", {32}, 43, 0, 64}}), true});
    c.push_back({"q8_0 ne[0] = 33", file_with({{"t", {33, 2}, 8, 0, 128}}), true});
    // Element counts >= INT64_MAX: gguf.cpp at llama.cpp commit de3ff81 rejects them, but the libggml build
    // shipped with node-llama-cpp accepts both (its byte size wraps to 0), so they are not checked against it.
    c.push_back({"element count overflow 2-D", file_with({{"t", {std::int64_t{1} << 62, 4}, 0, 0, 32}}), false});
    c.push_back({"element count overflow 4-D", file_with({{"t", {1 << 20, 1 << 20, 1 << 20, 1 << 20}, 0, 0, 32}}), false});
    c.push_back({"second offset unpadded", file_with({{"a", {6}, 0, 0, 24}, {"b", {1}, 0, 24, 4}}), true});
    c.push_back({"first offset not 0", file_with({{"a", {8}, 0, 32, 32}}), true});
    c.push_back({"offsets swapped", file_with({{"a", {8}, 0, 32, 32}, {"b", {8}, 0, 0, 32}}), true});
    {
        Bytes b = good;
        b.b.resize(0x120 + 2);  // b's 4 data bytes cut short; no_alloc ggml never looks at the data
        c.push_back({"data beyond EOF", b, false});
    }
    {
        Bytes b = good;
        b.b.resize(0x100 + 8);  // header intact, w's data cut
        c.push_back({"truncated data section", b, false});
    }
    return c;
}

}  // namespace gguf_test
