// Private to src/hub (and its unit tests and fuzz target): the Hub's wire protocol as pure functions, docs/hub.md.
// The retry policy, URL encoding, the JSON bodies the client sends (preupload, LFS batch, NDJSON commit, multipart
// completion) and the parsers of the Hub's answers. client.cpp speaks HTTP with them; nothing here does I/O.
#pragma once
#include <shardforge/hub.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::hub {

// ------------------------------------------------------------------ retry policy (pure, unit-tested)
struct HttpHeaders {
    std::map<std::string, std::string> h;  // lower-case names
    [[nodiscard]] std::string get(const std::string& lower_name) const;
};
struct RetryDecision {
    bool retry = false;
    double delay_s = 0;
};
// attempt = retries done so far (0 for the first failure). status 0 = transport error (connect, reset, timeout).
// Retries 408/429/500/502/503/504 and transport errors up to max_retries; delay = min(base*2^attempt, max) with
// +-25% jitter (jitter01 in [0,1)); on 429/503 RateLimit "r=0;t=T" -> T+1 s, else Retry-After (seconds or
// HTTP-date) -> value+1 s.
[[nodiscard]] RetryDecision retry_decision(const Config& cfg, int attempt, long status, const HttpHeaders& headers,
                                           double jitter01, std::int64_t now_unix);
[[nodiscard]] std::optional<double> parse_retry_after(std::string_view v, std::int64_t now_unix);
// IETF RateLimit header: '"api";r=0;t=12' -> {remaining 0, reset 12}.
struct RateLimit {
    long remaining = -1;
    double reset_s = -1;
};
[[nodiscard]] std::optional<RateLimit> parse_ratelimit(std::string_view v);

// ------------------------------------------------------------------ protocol encoding (pure)
[[nodiscard]] std::string url_encode(std::string_view s);  // encodeURIComponent-like, no safe characters

[[nodiscard]] std::string encode_preupload(const std::vector<PreuploadFile>& files);
[[nodiscard]] std::vector<PreuploadResult> parse_preupload(std::string_view body);  // throws Network on malformed

// revision empty with create_pr: no "ref" key (both official clients leave it out then).
// offer_xet adds "xet" to the transfers (docs/xet.md "Upload").
[[nodiscard]] std::string encode_batch(const std::vector<LfsObject>& objects, const std::string& revision,
                                       bool create_pr, bool offer_xet = false);
// The "transfer" the Hub picked ("basic" when absent); parse_batch refuses any but basic, multipart and xet.
[[nodiscard]] std::string parse_batch_transfer(std::string_view body);
struct BatchAction {
    std::string oid;
    std::uint64_t size = 0;
    bool present = false;                 // no "actions": the Hub already has it
    std::string upload_href;              // basic PUT url, or multipart completion url
    std::uint64_t chunk_size = 0;         // > 0: multipart
    std::vector<std::string> part_urls;   // multipart, in part order (1-based keys "00001"...)
    std::string verify_href;
    std::map<std::string, std::string> xet_header;   // xet: the upload action's X-Xet-* headers, lower-case names
    int error_code = 0;                   // per-object error
    std::string error_message;
};
[[nodiscard]] std::vector<BatchAction> parse_batch(std::string_view body);  // throws Network on malformed

// Xet write token: GET <batch href> or /api/{type}s/{repo}/xet-write-token/{rev} -> {accessToken, casUrl, exp}.
struct XetToken {
    std::string access_token, cas_url;   // cas_url without a trailing '/'
    std::int64_t exp = 0;                // unix seconds
};
[[nodiscard]] XetToken parse_xet_token(std::string_view body);   // throws Network on malformed
// The token the batch answer carried in X-Xet-* headers, if complete.
[[nodiscard]] std::optional<XetToken> xet_token_from_headers(const std::map<std::string, std::string>& h);

[[nodiscard]] std::string encode_commit(const CommitHeader& h, const std::vector<CommitOp>& ops);
[[nodiscard]] CommitResult parse_commit_response(std::string_view body);
[[nodiscard]] std::string encode_completion(const std::string& oid, const std::vector<std::string>& etags);

[[nodiscard]] std::string base64(std::string_view bytes);
// git blob oid: sha1("blob <len>\0" + bytes), what the Hub reports for regular files.
[[nodiscard]] std::string git_blob_oid(std::string_view bytes);

}  // namespace shardforge::hub
