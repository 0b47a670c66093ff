// Xet storage formats (docs/xet.md): content-defined chunking, chunk / xorb / file / verification hashes, xorb
// packing with in-session dedup, and the xorb and shard byte layouts the CAS accepts. Pure: no files, no network,
// no MPI; bytes come in through spans or a read callback. Private to the hub module (and its tests).
#pragma once

#include <shardforge/core.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/blake3.hpp"

namespace shardforge::hub::xet {

using Hash = std::array<std::uint8_t, 32>;

// ---------------------------------------------------------------- chunking constants (docs/xet.md "Chunking")
constexpr std::size_t target_chunk_size = 65536;
constexpr std::size_t min_chunk_size = target_chunk_size / 8;  // 8192
constexpr std::size_t max_chunk_size = target_chunk_size * 2;  // 131072
constexpr std::size_t gear_window = 64;
// Bytes at the start of each chunk never fed to the gear hash: a boundary cannot fall there anyway.
constexpr std::size_t chunk_skip = min_chunk_size - gear_window - 1;  // 8127
// (TARGET-1) shifted up to the top bits: a boundary where the top 16 bits of the gear hash are zero.
constexpr std::uint64_t boundary_mask = 0xFFFF000000000000ull;
// Smallest chunk size at which a mask match ends a chunk. The Xet specification and xet-core (hf_xet) use
// MIN = 8192, which uploads use; @huggingface/xetchunk-wasm 0.2.0 (the JS client) tests from the first hashed byte,
// chunk_skip + 1 = 8128, which changes boundaries on some inputs (docs/xet.md "The minimum-chunk constant").
constexpr std::size_t min_test_spec = min_chunk_size;
constexpr std::size_t min_test_js = chunk_skip + 1;

// ---------------------------------------------------------------- keys (docs/xet.md "Hashes")
extern const Hash data_key;           // chunk hashes
extern const Hash internal_node_key;  // merkle nodes
extern const Hash verification_key;   // term verification hashes

// ---------------------------------------------------------------- xorb and shard limits (docs/xet.md "Xorbs")
constexpr std::size_t max_xorb_bytes = 64u << 20;  // serialized xorb, as POSTed
constexpr std::size_t max_xorb_chunks = 8192;
constexpr std::size_t chunk_header_bytes = 8;
constexpr std::size_t shard_record_bytes = 48;
constexpr std::size_t shard_footer_bytes = 200;

// Text form of a hash ("xet-hex"): each 8-byte group read as a little-endian u64, printed as 16 lowercase hex
// digits. Plain byte-order hex is a different string.
[[nodiscard]] std::string to_hex(const Hash& h);
[[nodiscard]] std::optional<Hash> from_hex(std::string_view s);

struct Chunk {
    Hash hash;
    std::uint32_t length = 0;
};

// Streaming content-defined chunker: boundaries depend only on the bytes, never on how they are split into calls.
class Chunker {
public:
    explicit Chunker(std::size_t min_test = min_test_spec) : min_test_(min_test) {}
    // Consumes bytes up to and including the next chunk boundary (boundary() is then true) or all of them.
    // Returns the number consumed.
    std::size_t scan(std::span<const std::uint8_t> bytes);
    [[nodiscard]] bool boundary() const { return boundary_; }
    [[nodiscard]] std::uint64_t open_bytes() const { return len_; }  // bytes of the chunk not yet ended

private:
    std::size_t min_test_;
    std::uint64_t h_ = 0;
    std::uint64_t len_ = 0;
    bool boundary_ = false;
};

// Chunks a byte stream and hashes each chunk as it goes (no chunk is buffered): what a writer feeds while a file
// is written. finish() ends the last chunk.
class ChunkHasher {
public:
    explicit ChunkHasher(std::size_t min_test = min_test_spec);
    void update(std::span<const std::uint8_t> bytes);
    [[nodiscard]] std::vector<Chunk> finish();

private:
    Chunker chunker_;
    core::Blake3 blake_;
    std::vector<Chunk> chunks_;
    std::uint64_t open_ = 0;
};

[[nodiscard]] std::vector<Chunk> chunk_bytes(std::span<const std::uint8_t> bytes, std::size_t min_test = min_test_spec);
[[nodiscard]] Hash chunk_hash(std::span<const std::uint8_t> bytes);

// Merkle aggregation of (hash, length) nodes: groups of 3..9 cut where a hash is 0 mod 4, each group hashed as text
// lines "<xet-hex> : <length>\n" with internal_node_key, until one node is left. Empty: 32 zero bytes.
[[nodiscard]] Hash aggregate(std::span<const Chunk> nodes);
[[nodiscard]] inline Hash xorb_hash(std::span<const Chunk> chunks) { return aggregate(chunks); }
// keyed BLAKE3 with a zero key over aggregate(chunks); an empty file is 32 zero bytes. The X-Xet-Hash of a file.
[[nodiscard]] Hash file_hash(std::span<const Chunk> chunks);
// keyed BLAKE3 (verification_key) over the raw chunk hashes of one term.
[[nodiscard]] Hash verification_hash(std::span<const Chunk> chunks);
// keyed BLAKE3 (key) over a raw chunk hash: the form global-dedup answers list chunks in.
[[nodiscard]] Hash hmac(const Hash& chunk_hash, const Hash& key);

// ---------------------------------------------------------------- packing
// Where a chunk's bytes come from: the caller's file index and the byte offset in it.
struct ChunkSource {
    std::uint32_t file = 0;
    std::uint64_t offset = 0;
};

struct Xorb {
    std::vector<Chunk> chunks;
    std::vector<ChunkSource> sources;  // parallel to chunks
    std::uint64_t serialized_bytes = 0;  // with every chunk stored uncompressed (scheme 0)
    Hash hash{};                          // set when the xorb is closed
};

// A run of consecutive chunks of one xorb that reproduces consecutive bytes of a file.
struct Term {
    std::uint32_t xorb = 0;  // index into the packer's xorbs, or into its remote_xorbs() when `remote`
    std::uint32_t chunk_start = 0;
    std::uint32_t chunk_end = 0;  // exclusive
    std::uint32_t unpacked_bytes = 0;
    Hash verification{};
    bool remote = false;     // a xorb the CAS already has (global dedup), not uploaded in this session
};

struct FileEntry {
    Hash file_hash{};
    core::Sha256Digest sha256{};  // of the file's bytes (the commit's LFS oid)
    std::uint64_t size = 0;
    std::vector<Term> terms;
};

// Packs the chunks of one upload session's files into xorbs, in order: a chunk already stored in the session is
// referenced instead of stored again; a xorb closes before a record would take it past max_xorb_bytes and after
// max_xorb_chunks chunks (the JS client's rule, so that its xorbs and ours coincide). Terms merge consecutive file
// chunks stored at consecutive indexes of one xorb.
class Packer {
public:
    // A chunk the CAS already stores as chunk `index` of xorb `xorb` (a global dedup answer): later files reference
    // it there instead of storing it. Chunks stored in this session keep precedence.
    void add_remote(const Hash& chunk_hash, const Hash& xorb, std::uint32_t index);
    FileEntry add_file(std::uint32_t file, std::span<const Chunk> chunks, const core::Sha256Digest& sha256);
    [[nodiscard]] const std::vector<Hash>& remote_xorbs() const { return remote_xorbs_; }
    // Closes the open xorb; every xorb's hash is set.
    [[nodiscard]] std::vector<Xorb> finish();

private:
    void close_xorb();
    std::vector<Xorb> xorbs_;
    Xorb open_;
    std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>> stored_;  // raw hash -> xorb, index
    std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>> remote_;  // raw hash -> remote xorb, index
    std::vector<Hash> remote_xorbs_;
};

// The serialized xorb (what is POSTed to /v1/xorbs/default/{hash}): per chunk an 8-byte header (version 0, u24
// payload size, scheme 0 = none, u24 chunk size) and the chunk bytes. read(source, out) fills one chunk's bytes.
using ChunkReader = std::function<void(const ChunkSource&, std::span<std::uint8_t>)>;
[[nodiscard]] std::vector<std::uint8_t> serialize_xorb(const Xorb& x, const ChunkReader& read);

// The serialized shard (POST /v1/shards): header, one file-info block per distinct file hash (header, terms,
// verification entries, metadata extension with the SHA-256), bookend, one CAS-info block per xorb, bookend; then,
// when footer_timestamp is set, the 200-byte footer the JS client sends (footer_size 200), else none (footer_size
// 0, as the specification asks of uploads).
// remote_xorbs: Packer::remote_xorbs(), the hashes remote terms refer to (no CAS-info block: not uploaded here).
[[nodiscard]] std::vector<std::uint8_t> serialize_shard(std::span<const FileEntry> files, std::span<const Xorb> xorbs,
                                                        std::optional<std::uint64_t> footer_timestamp = std::nullopt,
                                                        std::span<const Hash> remote_xorbs = {});

// A global dedup answer (GET /v1/chunks/default/{hash}, docs/xet.md "Deduplication"): a shard whose CAS-info blocks
// list, per xorb, its chunks as HMAC(chunk hash, key) with the key in the footer. Throws core::Error (Network) when
// the bytes are not such a shard.
struct DedupAnswer {
    Hash key{};
    std::uint64_t key_expiry = 0;  // unix seconds; 0 = none given
    struct Block {
        Hash xorb{};
        std::vector<Hash> chunk_hmacs;  // in xorb chunk order
    };
    std::vector<Block> blocks;
};
[[nodiscard]] DedupAnswer parse_dedup_shard(std::span<const std::uint8_t> bytes);

// ---------------------------------------------------------------- download (docs/xet.md "Download")
// Decodes one LZ4 frame (magic 04 22 4D 18; any block size, linked or independent blocks, optional content size,
// dictionary id and checksums, which are skipped, not verified: every chunk is checked by its hash instead) into
// exactly `expected` bytes. Written from the LZ4 frame and block format descriptions. Throws core::Error (Verify)
// on malformed input or a size other than `expected`.
[[nodiscard]] std::vector<std::uint8_t> lz4_frame_decode(std::span<const std::uint8_t> frame, std::size_t expected);

// Chunk records as a xorb stores them (8-byte header + payload; scheme 0 stored, 1 LZ4 frame, 2 LZ4 frame of the
// bytes grouped by position mod 4), decoded: the chunk bytes, back to back, and each chunk's length. `bytes` must
// hold exactly `count` records (a ranged xorb fetch). Throws core::Error (Verify) naming the record otherwise.
struct DecodedChunks {
    std::vector<std::uint8_t> bytes;
    std::vector<std::uint32_t> lengths;
};
[[nodiscard]] DecodedChunks decode_chunk_records(std::span<const std::uint8_t> bytes, std::size_t count);

}  // namespace shardforge::hub::xet
