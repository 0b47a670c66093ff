// Duplicate-key-rejecting JSON parse (see safetensors_json.hpp).
#include "safetensors_json.hpp"

#include <shardforge/core.hpp>

#include <set>
#include <utility>

namespace shardforge::formats::detail {

nlohmann::json parse_json_no_duplicates(std::string_view text) {
    struct Frame {
        std::set<std::string> keys;
        std::string last_key;
    };
    std::vector<Frame> stack; // one frame per open object
    auto cb = [&stack](int, nlohmann::json::parse_event_t ev, nlohmann::json &parsed) {
        using E = nlohmann::json::parse_event_t;
        if (ev == E::object_start) {
            stack.emplace_back();
        } else if (ev == E::object_end) {
            if (!stack.empty()) stack.pop_back();
        } else if (ev == E::key && !stack.empty()) {
            std::string k = parsed.get<std::string>();
            if (!stack.back().keys.insert(k).second) {
                DuplicateKey d;
                for (std::size_t i = 0; i + 1 < stack.size(); ++i) d.path.push_back(stack[i].last_key);
                d.path.push_back(std::move(k));
                throw d;
            }
            stack.back().last_key = std::move(k);
        }
        return true;
    };
    if (const auto nul = text.find('\0'); nul != std::string_view::npos)
        throw InvalidJson{"NUL byte at offset " + std::to_string(nul)};
    try {
        core::check_json_depth(text, "");
    } catch (const core::Error &e) {
        throw InvalidJson{e.why()};
    }
    if (text.substr(0, 3) == "\xEF\xBB\xBF")
        throw InvalidJson{"byte order mark (nlohmann skips it, serde_json does not)"};
    try {
        return nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                                     /*ignore_comments=*/false);
    } catch (const nlohmann::json::exception &e) {
        throw InvalidJson{e.what()};
    }
}

} // namespace shardforge::formats::detail
