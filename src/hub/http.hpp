// libcurl request layer of the hub module: one request = one easy handle; bodies from memory or from a byte
// range of a file (pread, so parts of one file upload in parallel); the Bearer token via CURLOPT_XOAUTH2_BEARER
// (libcurl never forwards it to another host on a redirect). TLS verification stays on; proxies come from the
// usual environment variables (libcurl default). Never logs headers.
#pragma once
#include <shardforge/hub.hpp>

#include "protocol.hpp"

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

namespace shardforge::hub::detail {

struct Request {
    std::string method = "GET", url;
    std::vector<std::string> headers;     // "Name: value"
    bool auth = false;                    // send the Hub token (only to the endpoint's /api and verify URLs)
    std::string body;                     // in-memory body (POST/PUT)
    int fd = -1;                          // or: file-range body [offset, offset+length)
    std::uint64_t offset = 0, length = 0;
    std::FILE* sink = nullptr;            // download: append the body here instead of Response::body
    int sink_fd = -1;                     // or: pwrite the body at sink_offset onwards (ranged downloads)
    std::uint64_t sink_offset = 0;
    bool follow = false;                  // follow redirects (downloads)
    long timeout_ms = 0;                  // > 0: total time limit
    long low_speed_time_s = 60;           // abort when below 1 KB/s for this long (no total timeout)
};
struct Response {
    long status = 0;                      // 0: transport error (see error)
    HttpHeaders headers;
    std::string body, error;
    std::uint64_t bytes_sent = 0, bytes_received = 0;   // bytes_received: body bytes written to the sink
};

Response perform(const Config& cfg, const Request& req);
// Error text of a Hub response: X-Error-Message, else {"error": ...}, else the body start; redacted.
std::string error_text(const Response& r, const std::string& token);

}  // namespace shardforge::hub::detail
