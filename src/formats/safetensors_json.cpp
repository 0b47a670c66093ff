// Duplicate-key-rejecting JSON parse (see safetensors_json.hpp).
#include "safetensors_json.hpp"

#include <set>
#include <utility>

namespace shardforge::formats::detail {

nlohmann::json parse_json_no_duplicates(std::string_view text) {
    struct Frame {
        std::set<std::string> keys;
        std::string last_key;
    };
    std::vector<Frame> stack;  // one frame per open object
    auto cb = [&stack](int, nlohmann::json::parse_event_t ev, nlohmann::json& parsed) {
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
    return nlohmann::json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true,
                                 /*ignore_comments=*/false);
}

}  // namespace shardforge::formats::detail
