// BLAKE3 (hash, keyed_hash, derive_key, extendable output), portable scalar code written from the BLAKE3
// specification (docs/xet.md "BLAKE3"). Private to the library: core's hashing primitive for the Xet client
// (src/hub/xet.hpp); the public vocabulary (include/shardforge/core.hpp) keeps SHA-256 only.
//
// Tree layout, as the specification defines it: the input is split into 1024-byte chunks of sixteen 64-byte
// blocks; each chunk is compressed block by block (flags CHUNK_START on its first block, CHUNK_END on its last),
// chunk chaining values are merged pairwise into a left-balanced binary tree of PARENT nodes, and the root node
// (a lone chunk's last block or the top parent) is compressed again with ROOT and an output block counter to
// produce any number of output bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shardforge::core {

constexpr std::size_t blake3_key_len = 32;
constexpr std::size_t blake3_out_len = 32;  // default output length; longer outputs through finalize(span)

using Blake3Key = std::array<std::uint8_t, blake3_key_len>;
using Blake3Hash = std::array<std::uint8_t, blake3_out_len>;

// Incremental hasher. update() any number of times with any split of the input; finalize() does not change the
// state, so more input may follow (the output is then of the longer input). Not thread-safe; copyable.
class Blake3 {
public:
    Blake3();                                         // hash mode
    explicit Blake3(const Blake3Key& key);            // keyed_hash mode
    [[nodiscard]] static Blake3 derive_key(std::string_view context);  // derive_key mode: feed the key material

    void update(std::span<const std::uint8_t> bytes);
    void update(std::string_view bytes);
    [[nodiscard]] Blake3Hash finalize() const;
    void finalize(std::span<std::uint8_t> out) const;  // extendable output: any length, prefix-consistent
    void reset();                                      // back to the empty input, same mode and key

private:
    struct ChunkState {
        std::array<std::uint32_t, 8> cv{};
        std::uint64_t counter = 0;                  // chunk index within the input
        std::array<std::uint8_t, 64> block{};
        std::uint8_t block_len = 0;                 // bytes buffered in block
        std::uint8_t blocks_compressed = 0;
        std::uint32_t flags = 0;                    // mode flags (KEYED_HASH, DERIVE_KEY_*)
        [[nodiscard]] std::size_t len() const { return 64u * blocks_compressed + block_len; }
    };
    Blake3(const std::array<std::uint32_t, 8>& key_words, std::uint32_t flags);
    void push_cv(const std::array<std::uint32_t, 8>& cv, std::uint64_t total_chunks);

    std::array<std::uint32_t, 8> key_{};
    std::uint32_t flags_ = 0;
    ChunkState chunk_;
    // Chaining values of completed subtrees, one per set bit of the completed-chunk count (at most 54 for 2^64
    // bytes).
    std::array<std::array<std::uint32_t, 8>, 54> stack_{};
    std::uint8_t stack_len_ = 0;
};

[[nodiscard]] Blake3Hash blake3(std::span<const std::uint8_t> bytes);
[[nodiscard]] Blake3Hash blake3_keyed(const Blake3Key& key, std::span<const std::uint8_t> bytes);
// derive_key(context, key material): a 32-byte key for that context.
[[nodiscard]] Blake3Hash blake3_derive_key(std::string_view context, std::span<const std::uint8_t> material);

}  // namespace shardforge::core
