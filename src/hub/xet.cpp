// Xet chunking, hashes, xorb packing and the xorb / shard byte layouts (docs/xet.md).
#include "xet.hpp"

#include <algorithm>
#include <cstring>
#include <tuple>

#include "core/gearhash.hpp"

namespace shardforge::hub::xet {
namespace {

constexpr Hash make_key(const std::array<std::uint8_t, 32>& b) { return b; }

// Shard header tag: "HFRepoMetaData", a zero byte and 17 fixed bytes (docs/xet.md "Shards").
constexpr std::array<std::uint8_t, 32> shard_tag = {'H',  'F',  'R',  'e',  'p',  'o',  'M',  'e',  't',  'a',  'D',
                                                    'a',  't',  'a',  0x00, 0x55, 0x69, 0x67, 0x45, 0x6a, 0x7b, 0x81,
                                                    0x57, 0x83, 0xa5, 0xbd, 0xd9, 0x5c, 0xcd, 0xd1, 0x4a, 0xa9};
constexpr std::uint64_t shard_version = 2;
constexpr std::uint64_t shard_footer_version = 1;
constexpr std::uint32_t file_flag_verification = 0x80000000u;
constexpr std::uint32_t file_flag_metadata_ext = 0x40000000u;

struct Node {
    Hash hash;
    std::uint64_t length;
};

// "hash % 4" of the format: the little-endian u64 of bytes 24..31, modulo 4.
bool is_cut(const Hash& h) { return (h[24] & 3u) == 0; }

std::size_t next_merge_cut(std::span<const Node> r) {
    if (r.size() <= 2) return r.size();
    const std::size_t end = std::min<std::size_t>(9, r.size());
    for (std::size_t i = 2; i < end; ++i)
        if (is_cut(r[i].hash)) return i + 1;
    return end;
}

Node merge(std::span<const Node> group) {
    std::string text;
    std::uint64_t total = 0;
    for (const Node& n : group) {
        text += to_hex(n.hash);
        text += " : ";
        text += std::to_string(n.length);
        text += '\n';
        total += n.length;
    }
    core::Blake3 b(internal_node_key);
    b.update(text);
    return {b.finalize(), total};
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_u24(std::vector<std::uint8_t>& out, std::uint32_t v) {
    for (int i = 0; i < 3; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void put_bytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> b) { out.insert(out.end(), b.begin(), b.end()); }
void put_zeros(std::vector<std::uint8_t>& out, std::size_t n) { out.insert(out.end(), n, 0); }
void put_bookend(std::vector<std::uint8_t>& out) {
    out.insert(out.end(), 32, 0xFF);
    put_zeros(out, 16);
}
void patch_u64(std::vector<std::uint8_t>& out, std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) out[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::string key_of(const Hash& h) { return std::string(reinterpret_cast<const char*>(h.data()), h.size()); }

}  // namespace

// Keys as the format fixes them (xet-core merklehash/data_hash.rs, metadata_shard/chunk_verification.rs).
const Hash data_key = make_key({0x66, 0x97, 0xf5, 0x77, 0x5b, 0x95, 0x50, 0xde, 0x31, 0x35, 0xcb,
                                0xac, 0xa5, 0x97, 0x18, 0x1c, 0x9d, 0xe4, 0x21, 0x10, 0x9b, 0xeb,
                                0x2b, 0x58, 0xb4, 0xd0, 0xb0, 0x4b, 0x93, 0xad, 0xf2, 0x29});
const Hash internal_node_key = make_key({0x01, 0x7e, 0xc5, 0xc7, 0xa5, 0x47, 0x29, 0x96, 0xfd, 0x94, 0x66,
                                         0x66, 0xb4, 0x8a, 0x02, 0xe6, 0x5d, 0xdd, 0x53, 0x6f, 0x37, 0xc7,
                                         0x6d, 0xd2, 0xf8, 0x63, 0x52, 0xe6, 0x4a, 0x53, 0x71, 0x3f});
const Hash verification_key = make_key({0x7f, 0x18, 0x57, 0xd6, 0xce, 0x56, 0xed, 0x66, 0x12, 0x7f, 0xf9,
                                        0x13, 0xe7, 0xa5, 0xc3, 0xf3, 0xa4, 0xcd, 0x26, 0xd5, 0xb5, 0xdb,
                                        0x49, 0xe6, 0x41, 0x24, 0x98, 0x7f, 0x28, 0xfb, 0x94, 0xc3});

std::string to_hex(const Hash& h) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s(64, '0');
    for (std::size_t g = 0; g < 4; ++g)
        for (std::size_t i = 0; i < 8; ++i) {
            const std::uint8_t b = h[8 * g + 7 - i];  // most significant byte of the LE u64 first
            s[16 * g + 2 * i] = digits[b >> 4];
            s[16 * g + 2 * i + 1] = digits[b & 15];
        }
    return s;
}

std::optional<Hash> from_hex(std::string_view s) {
    if (s.size() != 64) return std::nullopt;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    Hash h{};
    for (std::size_t g = 0; g < 4; ++g)
        for (std::size_t i = 0; i < 8; ++i) {
            const int hi = nibble(s[16 * g + 2 * i]), lo = nibble(s[16 * g + 2 * i + 1]);
            if (hi < 0 || lo < 0) return std::nullopt;
            h[8 * g + 7 - i] = static_cast<std::uint8_t>(hi << 4 | lo);
        }
    return h;
}

std::size_t Chunker::scan(std::span<const std::uint8_t> bytes) {
    boundary_ = false;
    std::size_t i = 0;
    const std::size_t n = bytes.size();
    if (len_ < chunk_skip) {  // the unhashed head of the chunk
        const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_skip - len_, n));
        len_ += k;
        i = k;
    }
    while (i < n) {
        h_ = core::gear_update(h_, bytes[i]);
        ++len_;
        ++i;
        if (len_ >= max_chunk_size || (len_ >= min_test_ && (h_ & boundary_mask) == 0)) {
            boundary_ = true;
            h_ = 0;
            len_ = 0;
            return i;
        }
    }
    return n;
}

ChunkHasher::ChunkHasher(std::size_t min_test) : chunker_(min_test), blake_(data_key) {}

void ChunkHasher::update(std::span<const std::uint8_t> bytes) {
    while (!bytes.empty()) {
        const std::size_t k = chunker_.scan(bytes);
        blake_.update(bytes.first(k));
        open_ += k;
        if (chunker_.boundary()) {
            chunks_.push_back({blake_.finalize(), static_cast<std::uint32_t>(open_)});
            blake_.reset();
            open_ = 0;
        }
        bytes = bytes.subspan(k);
    }
}

std::vector<Chunk> ChunkHasher::finish() {
    if (open_ > 0) chunks_.push_back({blake_.finalize(), static_cast<std::uint32_t>(open_)});
    blake_.reset();
    open_ = 0;
    return std::move(chunks_);
}

std::vector<Chunk> chunk_bytes(std::span<const std::uint8_t> bytes, std::size_t min_test) {
    ChunkHasher h(min_test);
    h.update(bytes);
    return h.finish();
}

Hash chunk_hash(std::span<const std::uint8_t> bytes) { return core::blake3_keyed(data_key, bytes); }

Hash aggregate(std::span<const Chunk> chunks) {
    if (chunks.empty()) return Hash{};
    std::vector<Node> nodes;
    nodes.reserve(chunks.size());
    for (const Chunk& c : chunks) nodes.push_back({c.hash, c.length});
    while (nodes.size() > 1) {
        std::vector<Node> next;
        for (std::size_t k = 0; k < nodes.size();) {
            const std::size_t c = next_merge_cut(std::span(nodes).subspan(k));
            next.push_back(merge(std::span(nodes).subspan(k, c)));
            k += c;
        }
        nodes = std::move(next);
    }
    return nodes[0].hash;
}

Hash file_hash(std::span<const Chunk> chunks) {
    if (chunks.empty()) return Hash{};
    return core::blake3_keyed(Hash{}, aggregate(chunks));
}

Hash verification_hash(std::span<const Chunk> chunks) {
    core::Blake3 b(verification_key);
    for (const Chunk& c : chunks) b.update(c.hash);
    return b.finalize();
}

Hash hmac(const Hash& chunk_hash, const Hash& key) { return core::blake3_keyed(key, chunk_hash); }

// ---------------------------------------------------------------- packing

void Packer::close_xorb() {
    if (open_.chunks.empty()) return;
    open_.hash = xorb_hash(open_.chunks);
    xorbs_.push_back(std::move(open_));
    open_ = Xorb{};
}

void Packer::add_remote(const Hash& chunk_hash, const Hash& xorb, std::uint32_t index) {
    const auto it = std::find(remote_xorbs_.begin(), remote_xorbs_.end(), xorb);
    const auto x = static_cast<std::uint32_t>(it - remote_xorbs_.begin());
    if (it == remote_xorbs_.end()) remote_xorbs_.push_back(xorb);
    remote_.emplace(key_of(chunk_hash), std::pair{x, index});
}

FileEntry Packer::add_file(std::uint32_t file, std::span<const Chunk> chunks, const core::Sha256Digest& sha256) {
    FileEntry e;
    e.file_hash = file_hash(chunks);
    e.sha256 = sha256;
    std::uint64_t offset = 0;
    std::size_t term_first = 0;  // index in chunks of the open term's first chunk
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const Chunk& c = chunks[i];
        std::uint32_t xorb = 0, index = 0;
        bool remote = false;
        if (auto it = stored_.find(key_of(c.hash)); it != stored_.end()) {
            std::tie(xorb, index) = it->second;
        } else if (auto r = remote_.find(key_of(c.hash)); r != remote_.end()) {
            std::tie(xorb, index) = r->second;
            remote = true;
        } else {
            const std::uint64_t record = chunk_header_bytes + c.length;
            if (open_.serialized_bytes + record > max_xorb_bytes) close_xorb();
            xorb = static_cast<std::uint32_t>(xorbs_.size());
            index = static_cast<std::uint32_t>(open_.chunks.size());
            open_.chunks.push_back(c);
            open_.sources.push_back({file, offset});
            open_.serialized_bytes += record;
            stored_.emplace(key_of(c.hash), std::pair{xorb, index});
            if (open_.chunks.size() >= max_xorb_chunks) close_xorb();
        }
        if (!e.terms.empty() && e.terms.back().xorb == xorb && e.terms.back().remote == remote &&
            e.terms.back().chunk_end == index) {
            e.terms.back().chunk_end = index + 1;
            e.terms.back().unpacked_bytes += c.length;
        } else {
            if (!e.terms.empty()) e.terms.back().verification = verification_hash(chunks.subspan(term_first, i - term_first));
            e.terms.push_back({xorb, index, index + 1, c.length, Hash{}, remote});
            term_first = i;
        }
        offset += c.length;
    }
    if (!e.terms.empty()) e.terms.back().verification = verification_hash(chunks.subspan(term_first));
    e.size = offset;
    return e;
}

std::vector<Xorb> Packer::finish() {
    close_xorb();
    return std::move(xorbs_);
}

std::vector<std::uint8_t> serialize_xorb(const Xorb& x, const ChunkReader& read) {
    std::vector<std::uint8_t> out;
    out.reserve(x.serialized_bytes);
    for (std::size_t i = 0; i < x.chunks.size(); ++i) {
        const std::uint32_t n = x.chunks[i].length;
        out.push_back(0);  // version
        put_u24(out, n);   // payload size
        out.push_back(0);  // scheme: none
        put_u24(out, n);   // chunk size
        const std::size_t at = out.size();
        out.resize(at + n);
        read(x.sources[i], std::span(out).subspan(at, n));
    }
    return out;
}

std::vector<std::uint8_t> serialize_shard(std::span<const FileEntry> files, std::span<const Xorb> xorbs,
                                          std::optional<std::uint64_t> footer_timestamp,
                                          std::span<const Hash> remote_xorbs) {
    std::vector<std::uint8_t> out;
    put_bytes(out, shard_tag);
    put_u64(out, shard_version);
    put_u64(out, footer_timestamp ? shard_footer_bytes : 0);

    // File-info section: each distinct file hash once.
    std::vector<Hash> seen;
    for (const FileEntry& f : files) {
        if (std::find(seen.begin(), seen.end(), f.file_hash) != seen.end()) continue;
        seen.push_back(f.file_hash);
        put_bytes(out, f.file_hash);
        put_u32(out, file_flag_verification | file_flag_metadata_ext);
        put_u32(out, static_cast<std::uint32_t>(f.terms.size()));
        put_zeros(out, 8);
        for (const Term& t : f.terms) {
            put_bytes(out, t.remote ? remote_xorbs[t.xorb] : xorbs[t.xorb].hash);
            put_u32(out, 0);  // xorb flags
            put_u32(out, t.unpacked_bytes);
            put_u32(out, t.chunk_start);
            put_u32(out, t.chunk_end);
        }
        for (const Term& t : f.terms) {
            put_bytes(out, t.verification);
            put_zeros(out, 16);
        }
        // SHA-256 stored so that its xet-hex is the usual digest hex: each 8-byte group reversed.
        Hash sha{};
        for (std::size_t g = 0; g < 4; ++g)
            for (std::size_t i = 0; i < 8; ++i) sha[8 * g + i] = f.sha256[8 * g + 7 - i];
        put_bytes(out, sha);
        put_zeros(out, 16);
    }
    put_bookend(out);

    // CAS-info section: every xorb of the session.
    const std::uint64_t cas_info_offset = out.size();
    std::uint64_t stored_on_disk = 0, stored = 0;
    for (const Xorb& x : xorbs) {
        std::uint64_t unpacked = 0;
        for (const Chunk& c : x.chunks) unpacked += c.length;
        put_bytes(out, x.hash);
        put_u32(out, 0);  // xorb flags
        put_u32(out, static_cast<std::uint32_t>(x.chunks.size()));
        put_u32(out, static_cast<std::uint32_t>(unpacked));
        put_u32(out, static_cast<std::uint32_t>(x.serialized_bytes));
        std::uint64_t at = 0;
        for (const Chunk& c : x.chunks) {
            put_bytes(out, c.hash);
            put_u32(out, static_cast<std::uint32_t>(at));
            put_u32(out, c.length);
            put_zeros(out, 8);
            at += c.length;
        }
        stored_on_disk += x.serialized_bytes;
        stored += unpacked;
    }
    put_bookend(out);

    if (footer_timestamp) {
        const std::size_t f = out.size();
        put_u64(out, shard_footer_version);
        put_u64(out, 48);  // file_info_offset
        put_u64(out, cas_info_offset);
        put_zeros(out, 6 * 8);  // lookup tables: none
        put_zeros(out, 32);     // chunk_hash_hmac_key: none in uploads
        put_u64(out, *footer_timestamp);
        put_u64(out, 0);  // shard_key_expiry
        put_zeros(out, 6 * 8);
        put_u64(out, stored_on_disk);
        put_u64(out, 0);  // materialized_bytes: 0, as the JS client writes
        put_u64(out, stored);
        put_u64(out, 0);
        patch_u64(out, f + 192, f);  // footer_offset
    }
    return out;
}

DedupAnswer parse_dedup_shard(std::span<const std::uint8_t> b) {
    auto bad = [](const std::string& why) {
        return core::Error(core::ErrorKind::Network, "", "", "Xet global dedup answer: " + why);
    };
    auto u64 = [&](std::size_t at) {
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = v << 8 | b[at + static_cast<std::size_t>(i)];
        return v;
    };
    auto u32 = [&](std::size_t at) { return static_cast<std::uint32_t>(u64(at) & 0xFFFFFFFFu); };
    auto hash_at = [&](std::size_t at) {
        Hash h{};
        std::copy_n(b.begin() + static_cast<std::ptrdiff_t>(at), 32, h.begin());
        return h;
    };
    auto is_bookend = [&](std::size_t at) { return std::all_of(b.begin() + static_cast<std::ptrdiff_t>(at),
                                                                b.begin() + static_cast<std::ptrdiff_t>(at + 32),
                                                                [](std::uint8_t x) { return x == 0xFF; }); };
    if (b.size() < 48 || !std::equal(shard_tag.begin(), shard_tag.end(), b.begin())) throw bad("not a shard (tag)");
    if (u64(32) != shard_version) throw bad("shard version is not 2");
    const std::uint64_t footer = u64(40);
    if (footer != shard_footer_bytes || b.size() < 48 + footer) throw bad("no 200-byte footer (it carries the key)");
    const std::size_t end = b.size() - shard_footer_bytes;
    DedupAnswer a;
    a.key = hash_at(end + 72);
    a.key_expiry = u64(end + 112);
    std::size_t at = 48;
    // File-info section: skipped (dedup answers leave it empty, but a non-empty one is still well-formed).
    for (;;) {
        if (at + shard_record_bytes > end) throw bad("file section without bookend");
        if (is_bookend(at)) break;
        const std::uint32_t flags = u32(at + 32), n = u32(at + 36);
        std::size_t records = 1 + std::size_t{n};  // in 32 bits, n = 2^32 - 1 would wrap to 0 records: no progress
        if (flags & file_flag_verification) records += n;
        if (flags & file_flag_metadata_ext) records += 1;
        at += shard_record_bytes * records;
    }
    at += shard_record_bytes;
    for (;;) {
        if (at + shard_record_bytes > end) throw bad("CAS section without bookend");
        if (is_bookend(at)) break;
        DedupAnswer::Block blk;
        blk.xorb = hash_at(at);
        const std::uint32_t n = u32(at + 36);
        if (at + shard_record_bytes * (1 + std::uint64_t{n}) > end) throw bad("truncated CAS block");
        at += shard_record_bytes;
        for (std::uint32_t i = 0; i < n; ++i, at += shard_record_bytes) blk.chunk_hmacs.push_back(hash_at(at));
        a.blocks.push_back(std::move(blk));
    }
    return a;
}

}  // namespace shardforge::hub::xet

// ------------------------------------------------------------------ download: LZ4 frames and chunk records
namespace shardforge::hub::xet {
namespace {

[[noreturn]] void corrupt(const std::string& why) {
    throw core::Error(core::ErrorKind::Verify, "", "", "Xet chunk data: " + why);
}

// One LZ4 block (sequences of literals + back-references) appended to `out`; a match may reach into bytes earlier
// blocks of the frame produced (linked blocks).
void lz4_block(std::span<const std::uint8_t> in, std::vector<std::uint8_t>& out, std::size_t limit) {
    std::size_t i = 0;
    auto length = [&](std::size_t base) {
        std::size_t n = base;
        if (base != 15) return n;
        for (;;) {
            if (i >= in.size()) corrupt("LZ4 length runs past the block");
            const std::uint8_t b = in[i++];
            n += b;
            if (b != 255) return n;
        }
    };
    while (i < in.size()) {
        const std::uint8_t token = in[i++];
        const std::size_t lit = length(token >> 4);
        if (lit > in.size() - i || out.size() + lit > limit) corrupt("LZ4 literals run past the block or the chunk");
        out.insert(out.end(), in.begin() + static_cast<std::ptrdiff_t>(i), in.begin() + static_cast<std::ptrdiff_t>(i + lit));
        i += lit;
        if (i == in.size()) break;   // the last sequence has literals only
        if (in.size() - i < 2) corrupt("LZ4 match offset cut off");
        const std::size_t off = in[i] | (std::size_t{in[i + 1]} << 8);
        i += 2;
        const std::size_t mlen = length(token & 15) + 4;
        if (off == 0 || off > out.size()) corrupt("LZ4 match offset outside the decoded bytes");
        if (out.size() + mlen > limit) corrupt("LZ4 match runs past the chunk");
        const std::size_t from = out.size() - off;
        for (std::size_t k = 0; k < mlen; ++k) out.push_back(out[from + k]);   // overlapping copies repeat bytes
    }
}

}  // namespace

std::vector<std::uint8_t> lz4_frame_decode(std::span<const std::uint8_t> f, std::size_t expected) {
    auto u32 = [&](std::size_t at) {
        return static_cast<std::uint32_t>(f[at]) | static_cast<std::uint32_t>(f[at + 1]) << 8 |
               static_cast<std::uint32_t>(f[at + 2]) << 16 | static_cast<std::uint32_t>(f[at + 3]) << 24;
    };
    if (f.size() < 7 || u32(0) != 0x184D2204u) corrupt("not an LZ4 frame");
    const std::uint8_t flg = f[4];
    if ((flg >> 6) != 1) corrupt("LZ4 frame version is not 01");
    const bool block_checksum = flg & 0x10, content_size = flg & 0x08, content_checksum = flg & 0x04, dict = flg & 0x01;
    if (dict) corrupt("LZ4 frame needs a dictionary");
    std::size_t at = 6 + (content_size ? 8 : 0) + 1;   // FLG, BD, [content size], header checksum
    std::vector<std::uint8_t> out;
    out.reserve(expected);
    for (;;) {
        if (at + 4 > f.size()) corrupt("LZ4 frame cut off before its end mark");
        const std::uint32_t word = u32(at);
        at += 4;
        if (word == 0) break;
        const std::size_t n = word & 0x7FFFFFFFu;
        if (n > f.size() - at) corrupt("LZ4 block runs past the frame");
        const auto block = f.subspan(at, n);
        if (word & 0x80000000u) {
            if (out.size() + n > expected) corrupt("LZ4 stored block runs past the chunk");
            out.insert(out.end(), block.begin(), block.end());
        } else {
            lz4_block(block, out, expected);
        }
        at += n + (block_checksum ? 4 : 0);
    }
    if (content_checksum) at += 4;
    if (at > f.size()) corrupt("LZ4 frame cut off in its checksum");
    if (out.size() != expected) corrupt(core::cat("LZ4 frame decodes to ", out.size(), " bytes, the header says ", expected));
    return out;
}

DecodedChunks decode_chunk_records(std::span<const std::uint8_t> b, std::size_t count) {
    DecodedChunks d;
    std::size_t at = 0;
    for (std::size_t k = 0; k < count; ++k) {
        if (b.size() - at < chunk_header_bytes) corrupt(core::cat("record ", k, " of ", count, ": header cut off"));
        const auto u24 = [&](std::size_t p) { return std::size_t{b[p]} | std::size_t{b[p + 1]} << 8 | std::size_t{b[p + 2]} << 16; };
        if (b[at] != 0) corrupt(core::cat("record ", k, ": version ", int{b[at]}));
        const std::size_t csize = u24(at + 1), usize = u24(at + 5);
        const std::uint8_t scheme = b[at + 4];
        // No chunk is larger than max_chunk_size: a record claiming more is refused before anything is decoded (an
        // LZ4 payload of 66 KB could otherwise expand to 16 MiB).
        if (usize > max_chunk_size) corrupt(core::cat("record ", k, ": ", usize, " bytes, over the ", max_chunk_size, "-byte chunk limit"));
        at += chunk_header_bytes;
        if (csize > b.size() - at) corrupt(core::cat("record ", k, ": payload cut off"));
        const auto payload = b.subspan(at, csize);
        at += csize;
        if (scheme == 0) {
            if (csize != usize) corrupt(core::cat("record ", k, ": stored chunk with payload size ", csize, " != ", usize));
            d.bytes.insert(d.bytes.end(), payload.begin(), payload.end());
        } else if (scheme == 1) {
            const auto raw = lz4_frame_decode(payload, usize);
            d.bytes.insert(d.bytes.end(), raw.begin(), raw.end());
        } else if (scheme == 2) {
            // Byte grouping: group g holds the bytes at positions = g (mod 4), groups back to back.
            const auto g = lz4_frame_decode(payload, usize);
            const std::size_t base = d.bytes.size(), q = usize / 4, r = usize % 4;
            d.bytes.resize(base + usize);
            std::size_t src = 0;
            for (std::size_t grp = 0; grp < 4; ++grp)
                for (std::size_t j = 0, len = q + (grp < r ? 1 : 0); j < len; ++j) d.bytes[base + 4 * j + grp] = g[src++];
        } else {
            corrupt(core::cat("record ", k, ": unknown compression scheme ", int{scheme}));
        }
        d.lengths.push_back(static_cast<std::uint32_t>(usize));
    }
    if (at != b.size()) corrupt(core::cat(b.size() - at, " bytes after the ", count, " expected records"));
    return d;
}

}  // namespace shardforge::hub::xet
