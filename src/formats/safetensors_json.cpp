// Duplicate-key-rejecting JSON parse (see safetensors_json.hpp).
#include "safetensors_json.hpp"

#include <shardforge/core.hpp>

#include <set>
#include <utility>
#include <vector>

namespace shardforge::formats::detail {

namespace {
// First pass: the keys of every object, checked for duplicates with nothing built. (nlohmann's callback parser,
// which could do this while building the value, rescans an object's members whenever one of them ends: quadratic
// in the tensor count, minutes for a 70k-tensor LoRA header.)
class KeyCheck : public nlohmann::json_sax<nlohmann::json> {
public:
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t &) override { return true; }
    bool string(string_t &) override { return true; }
    bool binary(binary_t &) override { return true; }
    bool start_object(std::size_t) override {
        stack_.emplace_back();
        return true;
    }
    bool end_object() override {
        if (!stack_.empty()) stack_.pop_back();
        return true;
    }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool key(string_t &k) override {
        if (stack_.empty()) return true;
        if (!stack_.back().keys.insert(k).second) {
            DuplicateKey d;
            for (std::size_t i = 0; i + 1 < stack_.size(); ++i) d.path.push_back(stack_[i].last_key);
            d.path.push_back(k);
            throw d;
        }
        stack_.back().last_key = k;
        return true;
    }
    bool parse_error(std::size_t, const std::string &, const nlohmann::detail::exception &e) override {
        throw InvalidJson{e.what()};
    }

private:
    struct Frame {
        std::set<std::string> keys;
        std::string last_key;
    };
    std::vector<Frame> stack_; // one frame per open object
};
} // namespace

nlohmann::json parse_json_no_duplicates(std::string_view text) {
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
        KeyCheck keys;
        nlohmann::json::sax_parse(text.begin(), text.end(), &keys);
        return nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true,
                                     /*ignore_comments=*/false);
    } catch (const nlohmann::json::exception &e) {
        throw InvalidJson{e.what()};
    }
}

} // namespace shardforge::formats::detail
