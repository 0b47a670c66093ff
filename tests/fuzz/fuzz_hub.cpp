// Fuzz target: what the Hub (or anything answering at HF_ENDPOINT) sends back to our client. The first byte picks
// the parser: LFS batch response, preupload response, commit response, response headers (Retry-After, RateLimit ->
// retry decision), a model README's front matter / GGUF file names, a Xet CAS answer (global dedup shard, write
// token, xorb chunk records and LZ4 frames as a download fetches them); the rest is the input. Properties beyond "no
// crash, only core::Error": a multipart object has exactly ceil(size/chunk_size) part URLs; retry delays are finite,
// non-negative and bounded; the NDJSON commit we build from hostile paths/contents is one valid JSON object per line.
#include <shardforge/hub.hpp>

#include "hub/protocol.hpp"
#include "hub/xet.hpp"

#include "fuzz_common.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <string>

namespace hub = shardforge::hub;

namespace {
void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fuzz_hub: property violated: %s\n", what);
        std::abort();
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string in(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 6) {
        case 0:
            sf_fuzz::expect_only_core_errors("hub batch", [&] {
                for (const auto& a : hub::parse_batch(in)) {
                    if (a.chunk_size > 0)
                        require(a.part_urls.size() == (a.size + a.chunk_size - 1) / a.chunk_size, "part count");
                    require(!(a.present && a.error_code != 0), "present and failed");
                }
            });
            break;
        case 1:
            sf_fuzz::expect_only_core_errors("hub preupload", [&] { (void)hub::parse_preupload(in); });
            break;
        case 2:
            sf_fuzz::expect_only_core_errors("hub commit", [&] { (void)hub::parse_commit_response(in); });
            break;
        case 3: {
            // "Name: value" lines, as the header callback stores them (lower-case names).
            hub::HttpHeaders h;
            std::size_t pos = 0;
            while (pos < in.size()) {
                const std::size_t nl = std::min(in.find('\n', pos), in.size());
                const std::string line = in.substr(pos, nl - pos);
                pos = nl + 1;
                const auto c = line.find(':');
                if (c == std::string::npos) continue;
                std::string k = line.substr(0, c);
                for (auto& ch : k) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                h.h[k] = line.substr(c + 1);
            }
            hub::Config cfg;
            for (long status : {429L, 503L, 500L})
                for (int attempt = 0; attempt < 6; ++attempt) {
                    const auto d = hub::retry_decision(cfg, attempt, status, h, 0.5, 1700000000);
                    require(std::isfinite(d.delay_s) && d.delay_s >= 0 && d.delay_s <= 3600.0, "retry delay bounds");
                }
            (void)hub::parse_retry_after(in, 1700000000);
            (void)hub::parse_ratelimit(in);
            break;
        }
        case 4: {
            (void)hub::license_from_readme(in);
            (void)hub::gguf_quant_from_name(in);
            (void)hub::parse_repo_ref(in);
            std::vector<hub::CommitOp> ops(2);
            ops[0].path = in;
            ops[0].content = in;
            ops[1].path = in;
            ops[1].lfs = true;
            ops[1].oid = shardforge::core::sha256_hex(in);
            ops[1].size = in.size();
            std::string nd;
            try {
                nd = hub::encode_commit({in, in, ""}, ops);
            } catch (const nlohmann::json::exception&) {
                return 0;   // invalid UTF-8 in a path: nlohmann refuses to serialise it (never sent)
            }
            std::size_t n = 0;
            for (std::size_t p = 0; p < nd.size(); ++n) {
                const std::size_t nl = nd.find('\n', p);
                require(nl != std::string::npos, "NDJSON line without newline");
                const auto j = nlohmann::json::parse(nd.substr(p, nl - p), nullptr, false);
                require(!j.is_discarded() && j.is_object() && j.contains("key"), "NDJSON line is not a JSON object");
                p = nl + 1;
            }
            require(n == 3, "NDJSON line count");
            break;
        }
        case 5:
            sf_fuzz::expect_only_core_errors("xet dedup shard", [&] {
                const auto a = hub::xet::parse_dedup_shard(std::span(data + 1, size - 1));
                for (const auto& b : a.blocks) require(b.chunk_hmacs.size() * 48 <= size, "more chunks than bytes");
            });
            sf_fuzz::expect_only_core_errors("xet token", [&] { (void)hub::parse_xet_token(in); });
            // The same bytes as xorb bytes a download fetched: chunk records (stored / LZ4 / byte-grouped LZ4).
            sf_fuzz::expect_only_core_errors("xet chunk records", [&] {
                const auto d = hub::xet::decode_chunk_records(std::span(data + 1, size - 1), 1 + size % 4);
                std::size_t n = 0;
                for (const auto l : d.lengths) n += l;
                require(n == d.bytes.size() && d.lengths.size() == 1 + size % 4, "decoded chunk lengths");
            });
            sf_fuzz::expect_only_core_errors("xet lz4 frame", [&] {
                require(hub::xet::lz4_frame_decode(std::span(data + 1, size - 1), 4 * size).size() == 4 * size,
                        "LZ4 frame decoded to another size than asked");
            });
            break;
    }
    return 0;
}
