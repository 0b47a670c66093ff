// BLAKE3, portable scalar code written from the BLAKE3 specification (docs/xet.md "BLAKE3"): the compression
// function (7 rounds of the ChaCha-style G over a 4x4 word state, message words permuted between rounds), chunk
// chaining, the left-balanced parent tree kept as a stack of subtree chaining values, and the root output blocks.
#include "blake3.hpp"

#include <algorithm>
#include <cstring>

namespace shardforge::core {
namespace {

// Initialisation vector: the first 32 bits of the fractional parts of the square roots of the first 8 primes
// (the same constants as SHA-256's initial hash value).
constexpr std::array<std::uint32_t, 8> iv = {0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au,
                                             0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u};
// Message word order of round r+1 = permutation applied to the order of round r.
constexpr std::array<std::uint8_t, 16> msg_permutation = {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8};

// Domain flags (the specification's table of flags).
constexpr std::uint32_t chunk_start = 1u << 0;
constexpr std::uint32_t chunk_end = 1u << 1;
constexpr std::uint32_t parent = 1u << 2;
constexpr std::uint32_t root = 1u << 3;
constexpr std::uint32_t keyed_hash = 1u << 4;
constexpr std::uint32_t derive_key_context = 1u << 5;
constexpr std::uint32_t derive_key_material = 1u << 6;

constexpr std::size_t block_len = 64;
constexpr std::size_t chunk_len = 1024;

using Words8 = std::array<std::uint32_t, 8>;
using Words16 = std::array<std::uint32_t, 16>;

constexpr std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

std::uint32_t load_le32(const std::uint8_t* p) {
    return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
}

void store_le32(std::uint8_t* p, std::uint32_t x) {
    p[0] = static_cast<std::uint8_t>(x);
    p[1] = static_cast<std::uint8_t>(x >> 8);
    p[2] = static_cast<std::uint8_t>(x >> 16);
    p[3] = static_cast<std::uint8_t>(x >> 24);
}

Words16 load_block(const std::array<std::uint8_t, 64>& b) {
    Words16 m{};
    for (std::size_t i = 0; i < 16; ++i) m[i] = load_le32(b.data() + 4 * i);
    return m;
}

void g(Words16& s, int a, int b, int c, int d, std::uint32_t mx, std::uint32_t my) {
    s[a] = s[a] + s[b] + mx;
    s[d] = rotr(s[d] ^ s[a], 16);
    s[c] = s[c] + s[d];
    s[b] = rotr(s[b] ^ s[c], 12);
    s[a] = s[a] + s[b] + my;
    s[d] = rotr(s[d] ^ s[a], 8);
    s[c] = s[c] + s[d];
    s[b] = rotr(s[b] ^ s[c], 7);
}

// The compression function: all 16 output words (the first 8 are the chaining value; all 16 are root output).
Words16 compress(const Words8& cv, const Words16& block, std::uint64_t counter, std::uint32_t len,
                 std::uint32_t flags) {
    Words16 s = {cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
                 iv[0], iv[1], iv[2], iv[3],
                 static_cast<std::uint32_t>(counter), static_cast<std::uint32_t>(counter >> 32), len, flags};
    Words16 m = block;
    for (int r = 0; r < 7; ++r) {
        g(s, 0, 4, 8, 12, m[0], m[1]);  // columns
        g(s, 1, 5, 9, 13, m[2], m[3]);
        g(s, 2, 6, 10, 14, m[4], m[5]);
        g(s, 3, 7, 11, 15, m[6], m[7]);
        g(s, 0, 5, 10, 15, m[8], m[9]);  // diagonals
        g(s, 1, 6, 11, 12, m[10], m[11]);
        g(s, 2, 7, 8, 13, m[12], m[13]);
        g(s, 3, 4, 9, 14, m[14], m[15]);
        if (r < 6) {
            Words16 p{};
            for (std::size_t i = 0; i < 16; ++i) p[i] = m[msg_permutation[i]];
            m = p;
        }
    }
    for (std::size_t i = 0; i < 8; ++i) {
        s[i] ^= s[i + 8];
        s[i + 8] ^= cv[i];
    }
    return s;
}

Words8 first8(const Words16& w) {
    Words8 r{};
    std::copy_n(w.begin(), 8, r.begin());
    return r;
}

// A node waiting for its flags to be known: a chunk's last block or a parent's two child chaining values.
struct Output {
    Words8 input_cv;
    Words16 block;
    std::uint64_t counter;
    std::uint32_t len;
    std::uint32_t flags;

    [[nodiscard]] Words8 chaining_value() const { return first8(compress(input_cv, block, counter, len, flags)); }
    void root_bytes(std::span<std::uint8_t> out) const {
        std::uint64_t block_counter = 0;
        for (std::size_t pos = 0; pos < out.size(); pos += 2 * 32, ++block_counter) {
            const Words16 w = compress(input_cv, block, block_counter, len, flags | root);
            std::uint8_t bytes[64];
            for (std::size_t i = 0; i < 16; ++i) store_le32(bytes + 4 * i, w[i]);
            std::memcpy(out.data() + pos, bytes, std::min<std::size_t>(64, out.size() - pos));
        }
    }
};

Output parent_output(const Words8& left, const Words8& right, const Words8& key, std::uint32_t flags) {
    Words16 b{};
    std::copy(left.begin(), left.end(), b.begin());
    std::copy(right.begin(), right.end(), b.begin() + 8);
    return Output{key, b, 0, block_len, flags | parent};
}

Words8 key_words(std::span<const std::uint8_t, 32> key) {
    Words8 w{};
    for (std::size_t i = 0; i < 8; ++i) w[i] = load_le32(key.data() + 4 * i);
    return w;
}

}  // namespace

Blake3::Blake3() : Blake3(iv, 0) {}

Blake3::Blake3(const Blake3Key& key) : Blake3(key_words(key), keyed_hash) {}

Blake3::Blake3(const std::array<std::uint32_t, 8>& key_words_, std::uint32_t flags) : key_(key_words_), flags_(flags) {
    reset();
}

Blake3 Blake3::derive_key(std::string_view context) {
    Blake3 ctx(iv, derive_key_context);
    ctx.update(context);
    const Blake3Hash context_key = ctx.finalize();
    return Blake3(key_words(context_key), derive_key_material);
}

void Blake3::reset() {
    chunk_ = ChunkState{};
    chunk_.cv = key_;
    chunk_.flags = flags_;
    stack_len_ = 0;
}

void Blake3::push_cv(const std::array<std::uint32_t, 8>& cv, std::uint64_t total_chunks) {
    // One stack entry per set bit of total_chunks: a completed chunk closes as many subtrees as total_chunks has
    // trailing zero bits, each merged with the entry below it.
    Words8 merged = cv;
    while ((total_chunks & 1) == 0) {
        merged = parent_output(stack_[--stack_len_], merged, key_, flags_).chaining_value();
        total_chunks >>= 1;
    }
    stack_[stack_len_++] = merged;
}

void Blake3::update(std::string_view bytes) {
    update(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

void Blake3::update(std::span<const std::uint8_t> bytes) {
    const std::uint8_t* p = bytes.data();
    std::size_t n = bytes.size();
    while (n > 0) {
        // A full chunk is closed only when more input arrives: the last chunk of the input becomes the root or
        // the rightmost leaf, whose flags finalize() decides.
        if (chunk_.len() == chunk_len) {
            const Words16 last = load_block(chunk_.block);
            const Output o{chunk_.cv, last, chunk_.counter, block_len,
                           chunk_.flags | chunk_end | (chunk_.blocks_compressed == 0 ? chunk_start : 0u)};
            const std::uint64_t total = chunk_.counter + 1;
            push_cv(o.chaining_value(), total);
            chunk_ = ChunkState{};
            chunk_.cv = key_;
            chunk_.counter = total;
            chunk_.flags = flags_;
        }
        // Within the chunk, a full block is compressed only when more input arrives (same reason).
        if (chunk_.block_len == block_len) {
            const std::uint32_t start = chunk_.blocks_compressed == 0 ? chunk_start : 0u;
            chunk_.cv = first8(compress(chunk_.cv, load_block(chunk_.block), chunk_.counter, block_len,
                                        chunk_.flags | start));
            ++chunk_.blocks_compressed;
            chunk_.block_len = 0;
            chunk_.block.fill(0);
        }
        const std::size_t take = std::min<std::size_t>(block_len - chunk_.block_len, n);
        std::memcpy(chunk_.block.data() + chunk_.block_len, p, take);
        chunk_.block_len = static_cast<std::uint8_t>(chunk_.block_len + take);
        p += take;
        n -= take;
    }
}

void Blake3::finalize(std::span<std::uint8_t> out) const {
    Output o{chunk_.cv, load_block(chunk_.block), chunk_.counter, chunk_.block_len,
             chunk_.flags | chunk_end | (chunk_.blocks_compressed == 0 ? chunk_start : 0u)};
    for (std::size_t i = stack_len_; i-- > 0;) o = parent_output(stack_[i], o.chaining_value(), key_, flags_);
    o.root_bytes(out);
}

Blake3Hash Blake3::finalize() const {
    Blake3Hash h{};
    finalize(std::span<std::uint8_t>(h));
    return h;
}

Blake3Hash blake3(std::span<const std::uint8_t> bytes) {
    Blake3 h;
    h.update(bytes);
    return h.finalize();
}

Blake3Hash blake3_keyed(const Blake3Key& key, std::span<const std::uint8_t> bytes) {
    Blake3 h(key);
    h.update(bytes);
    return h.finalize();
}

Blake3Hash blake3_derive_key(std::string_view context, std::span<const std::uint8_t> material) {
    Blake3 h = Blake3::derive_key(context);
    h.update(material);
    return h.finalize();
}

}  // namespace shardforge::core
