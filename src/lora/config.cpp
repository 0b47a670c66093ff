// adapter_config.json parsing, rank/alpha pattern resolution, --adapter DIR[:weight], open_adapter.
#include <shardforge/lora.hpp>

#include <shardforge/formats.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

namespace shardforge::lora {

namespace {
using core::Error;
using core::ErrorKind;
using ojson = nlohmann::ordered_json;

bool get_bool(const ojson& j, const char* key, bool dflt, std::vector<std::string>& bad) {
    if (!j.contains(key) || j[key].is_null()) return dflt;
    if (!j[key].is_boolean()) {
        bad.push_back(core::cat("'", key, "' must be true/false"));
        return dflt;
    }
    return j[key].get<bool>();
}

// A config entry that "is set": not absent, not null, not false, not an empty container/string.
bool is_set(const ojson& j, const char* key) {
    if (!j.contains(key)) return false;
    const auto& v = j[key];
    if (v.is_null()) return false;
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_array() || v.is_object() || v.is_string()) return !v.empty() && !(v.is_string() && v.get<std::string>().empty());
    return true;
}

std::vector<std::string> get_str_list(const ojson& j, const char* key, std::vector<std::string>& bad) {
    std::vector<std::string> out;
    if (!j.contains(key) || j[key].is_null()) return out;
    const auto& v = j[key];
    if (v.is_string()) {  // PEFT accepts a single string for modules_to_save-like fields
        out.push_back(v.get<std::string>());
        return out;
    }
    if (!v.is_array()) {
        bad.push_back(core::cat("'", key, "' must be a list of strings"));
        return out;
    }
    for (const auto& e : v) {
        if (!e.is_string()) {
            bad.push_back(core::cat("'", key, "' must be a list of strings"));
            return {};
        }
        out.push_back(e.get<std::string>());
    }
    return out;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
    return s;
}
}  // namespace

namespace {

// Problems found while reading, reported together: malformed values (exit 3), then variants we cannot merge (4).
struct Findings {
    std::vector<std::string> bad, unsupported;
};

bool present(const ojson& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// The largest rank accepted (r, rank_pattern): a LoRA's rank is below the smaller side of the weight it adapts, and
// no transformer weight has a side of a million. A config claiming more is corrupt, and refused before any tensor
// is sized by it.
constexpr std::int64_t max_lora_rank = std::int64_t{1} << 20;

// peft_type, r and lora_alpha. A float r is accepted when it is a whole number; beyond 2^53 it cannot be a real rank
// (and beyond int64's range the conversion would be undefined), so it is refused as out of range.
void read_rank_and_alpha(const ojson& j, AdapterConfig& c, Findings& f) {
    if (present(j, "peft_type")) {
        if (!j["peft_type"].is_string()) f.bad.push_back("'peft_type' must be a string");
        else c.peft_type = j["peft_type"].get<std::string>();
        if (c.peft_type != "LORA")
            f.unsupported.push_back(core::cat("peft_type '", c.peft_type, "' (only LORA adapters can be merged)"));
    }
    if (present(j, "r")) {
        const auto& v = j["r"];
        if (v.is_number_integer()) c.r = v.get<std::int64_t>();
        else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
            if (std::fabs(v.get<double>()) <= 9007199254740992.0) c.r = static_cast<std::int64_t>(v.get<double>());
            else f.bad.push_back(core::cat("'r' is out of range: ", v.dump()));
        } else f.bad.push_back("'r' must be an integer");
        if (c.r <= 0) f.bad.push_back(core::cat("'r' must be positive, got ", c.r));
        else if (c.r > max_lora_rank)
            f.bad.push_back(core::cat("'r' is ", c.r, ", more than ", max_lora_rank, " (not a plausible LoRA rank)"));
    }
    if (present(j, "lora_alpha")) {
        if (!j["lora_alpha"].is_number()) f.bad.push_back("'lora_alpha' must be a number");
        else c.lora_alpha = j["lora_alpha"].get<double>();
        if (!std::isfinite(c.lora_alpha)) f.bad.push_back("'lora_alpha' must be finite");
    }
}

// What std::regex can compile safely: at most 1024 characters, no number of more than 6 digits (libstdc++ reads
// repeat counts and back-references into a signed long without an overflow check) and no repeat count {m,n} over 4
// digits (it expands a count into as many states).
bool tame_pattern(const std::string& k) {
    if (k.size() > 1024) return false;
    std::size_t run = 0;
    for (const char ch : k) {
        run = ch >= '0' && ch <= '9' ? run + 1 : 0;
        if (run > 6) return false;
    }
    for (std::size_t i = 0; i < k.size(); ++i) {
        if (k[i] != '{' || (i > 0 && k[i - 1] == '\\')) continue;
        std::size_t digits = 0;
        for (std::size_t j = i + 1; j < k.size() && k[j] != '}'; ++j) {
            if (k[j] >= '0' && k[j] <= '9') {
                if (++digits > 4) return false;
            } else {
                digits = 0;
            }
        }
    }
    return true;
}

// rank_pattern / alpha_pattern: PEFT regular expressions (keys) to a rank or an alpha.
void read_patterns(const ojson& j, AdapterConfig& c, Findings& f) {
    for (const char* key : {"rank_pattern", "alpha_pattern"}) {
        if (!present(j, key)) continue;
        if (!j[key].is_object()) {
            f.bad.push_back(core::cat("'", key, "' must be an object"));
            continue;
        }
        for (const auto& [k, v] : j[key].items()) {
            if (!tame_pattern(k)) {
                f.bad.push_back(core::cat("'", key, "' key of ", k.size(), " characters has an implausible number or length "
                                          "(over 1024 characters, a number over 6 digits or {n} over 9999)"));
                continue;
            }
            try {
                (void)std::regex("(.*\\.)?(" + k + ")$");
            } catch (const std::regex_error&) {
                f.bad.push_back(core::cat("'", key, "' key '", k, "' is not a valid regular expression"));
                continue;
            }
            if (std::string_view(key) == "rank_pattern") {
                if (!v.is_number_integer() || v.get<std::int64_t>() <= 0 || v.get<std::int64_t>() > max_lora_rank)
                    f.bad.push_back(core::cat("rank_pattern['", k, "'] must be a positive integer up to ", max_lora_rank));
                else c.rank_pattern.emplace_back(k, v.get<std::int64_t>());
            } else {
                if (!v.is_number() || !std::isfinite(v.get<double>()))
                    f.bad.push_back(core::cat("alpha_pattern['", k, "'] must be a number"));
                else c.alpha_pattern.emplace_back(k, v.get<double>());
            }
        }
    }
}

void read_flags(const ojson& j, AdapterConfig& c, Findings& f) {
    c.use_rslora = get_bool(j, "use_rslora", false, f.bad);
    c.fan_in_fan_out = get_bool(j, "fan_in_fan_out", false, f.bad);
    c.lora_bias = get_bool(j, "lora_bias", false, f.bad);
    c.use_dora = get_bool(j, "use_dora", false, f.bad);
    c.ensure_weight_tying = get_bool(j, "ensure_weight_tying", false, f.bad);
}

// target_parameters, modules_to_save, bias and the base model's name.
void read_targets(const ojson& j, AdapterConfig& c, Findings& f) {
    if (j.contains("target_parameters") && j["target_parameters"].is_string())
        f.bad.push_back("'target_parameters' must be a list (regex strings are not allowed, PEFT config.py)");
    else c.target_parameters = get_str_list(j, "target_parameters", f.bad);
    c.modules_to_save = get_str_list(j, "modules_to_save", f.bad);
    if (present(j, "bias")) {
        if (!j["bias"].is_string()) f.bad.push_back("'bias' must be a string");
        else c.bias = j["bias"].get<std::string>();
        if (c.bias != "none" && c.bias != "all" && c.bias != "lora_only")
            f.bad.push_back(core::cat("'bias' must be none, all or lora_only, got '", c.bias, "'"));
    }
    if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
        c.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
}

// Variants we cannot reproduce with a plain merge (PEFT's tuners/lora/config.py: init_lora_weights, use_alora, ...).
void refuse_unmergeable(const ojson& j, Findings& f) {
    auto& u = f.unsupported;
    if (j.contains("init_lora_weights") && j["init_lora_weights"].is_string()) {
        const std::string init = j["init_lora_weights"].get<std::string>();
        for (const char* p : {"pissa", "olora", "corda", "loftq", "lora_ga"}) {
            if (init.rfind(p, 0) == 0)
                u.push_back(core::cat(
                    "init_lora_weights='", init,
                    "': the adapter is relative to a modified (residual) base; convert it to plain LoRA with PEFT "
                    "(save_pretrained(path_initial_model_for_weight_conversion=...)) first"));
        }
    }
    if (is_set(j, "alora_invocation_tokens")) u.push_back("aLoRA (alora_invocation_tokens) cannot be merged");
    if (is_set(j, "arrow_config")) u.push_back("Arrow routing (arrow_config) cannot be merged");
    if (is_set(j, "use_qalora")) u.push_back("QALoRA (use_qalora) is GPTQ-only and cannot be merged here");
    if (is_set(j, "use_bdlora") || is_set(j, "bdlora_config")) u.push_back("BD-LoRA (use_bdlora) has its own delta formula");
    if (is_set(j, "kasa_config") || is_set(j, "use_kasa")) u.push_back("KaSA (kasa_config) truncates the base weight");
    if (is_set(j, "layer_replication"))
        u.push_back("layer_replication changes the model topology; a tensor merge cannot reproduce it");
    if (is_set(j, "trainable_token_indices"))
        u.push_back("trainable_token_indices (trainable tokens) are not supported yet");
}

}  // namespace

AdapterConfig parse_adapter_config(std::string_view json_text, const std::string& file) {
    core::check_json_depth(json_text, file);
    ojson j;
    try {
        j = ojson::parse(json_text);
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::BadInput, file, "", core::cat("not valid JSON: ", e.what()));
    }
    if (!j.is_object()) throw Error(ErrorKind::BadInput, file, "", "top level must be a JSON object");

    AdapterConfig c;
    Findings f;
    read_rank_and_alpha(j, c, f);
    read_flags(j, c, f);
    read_patterns(j, c, f);
    read_targets(j, c, f);
    refuse_unmergeable(j, f);
    if (!f.bad.empty()) throw Error(ErrorKind::BadInput, file, "", join(f.bad));
    if (!f.unsupported.empty()) throw Error(ErrorKind::Unsupported, file, "", join(f.unsupported));
    return c;
}

bool pattern_matches(const std::string& key, const std::string& module) {
    // PEFT get_pattern_key: re.match(rf"(.*\.)?({key})$", name). re.match anchors at the start and `$` at the end,
    // so this is a whole-string match.
    const std::regex re("(.*\\.)?(" + key + ")$");
    return std::regex_match(module, re);
}

ModuleScale module_scale(const AdapterConfig& c, std::string_view module, const std::string& file) {
    const std::string name(module);
    ModuleScale s;
    s.r = c.r;
    s.alpha = c.lora_alpha;
    try {
        for (const auto& [k, v] : c.rank_pattern)
            if (pattern_matches(k, name)) {
                s.r = v;
                break;
            }
        for (const auto& [k, v] : c.alpha_pattern)
            if (pattern_matches(k, name)) {
                s.alpha = v;
                break;
            }
    } catch (const std::regex_error& e) {
        throw Error(ErrorKind::BadInput, file, "", core::cat("bad rank/alpha pattern: ", e.what()));
    }
    if (s.r <= 0) throw Error(ErrorKind::BadInput, file, "", core::cat("rank for '", name, "' must be positive"));
    s.scaling = c.use_rslora ? s.alpha / std::sqrt(static_cast<double>(s.r)) : s.alpha / static_cast<double>(s.r);
    return s;
}

std::pair<std::filesystem::path, double> parse_adapter_arg(std::string_view arg) {
    std::string a(arg);
    double w = 1.0;
    const auto colon = a.rfind(':');
    if (colon != std::string::npos) {
        const std::string tail = a.substr(colon + 1);
        if (!tail.empty()) {
            errno = 0;
            char* end = nullptr;
            const double v = std::strtod(tail.c_str(), &end);
            if (end == tail.c_str() + tail.size() && errno == 0) {
                if (!std::isfinite(v))
                    throw Error(ErrorKind::Usage, "", "", core::cat("--adapter ", a, ": weight must be finite"));
                w = v;
                a.resize(colon);
            }
        }
    }
    if (a.empty()) throw Error(ErrorKind::Usage, "", "", core::cat("--adapter '", arg, "': empty directory"));
    return {std::filesystem::path(a), w};
}

Adapter open_adapter(const std::filesystem::path& dir, double weight) {
    if (!std::isfinite(weight))
        throw Error(ErrorKind::Usage, dir.string(), "", "adapter weight must be finite");
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec))
        throw Error(ErrorKind::BadInput, dir.string(), "", "adapter directory does not exist");
    Adapter a;
    a.dir = dir;
    a.weight = weight;
    const auto cfg_path = dir / "adapter_config.json";
    if (!std::filesystem::exists(cfg_path, ec))
        throw Error(ErrorKind::BadInput, cfg_path.string(), "", "missing adapter_config.json");
    a.config = parse_adapter_config(core::read_input_file(cfg_path.string()), cfg_path.string());
    a.file = dir / "adapter_model.safetensors";
    if (!std::filesystem::exists(a.file, ec)) {
        if (std::filesystem::exists(dir / "adapter_model.bin", ec))
            throw Error(ErrorKind::Unsupported, (dir / "adapter_model.bin").string(), "",
                        "pickle adapters are not supported (unsafe to load); convert to adapter_model.safetensors, "
                        "e.g. PeftModel.from_pretrained(...).save_pretrained(dir, safe_serialization=True)");
        throw Error(ErrorKind::BadInput, a.file.string(), "", "missing adapter_model.safetensors");
    }
    // The adapter's header is validated by the same reader as every other safetensors file (headers only).
    const auto reader = formats::SafetensorsReader::open(a.file);
    // Tensors may differ in dtype (PEFT saves what training left, e.g. F32 lora_A beside BF16 lora_B): each is
    // converted to f32 on its own, so any floating-point mix is accepted; an integer or bool tensor has no
    // meaning as a LoRA factor and is refused here, before planning (docs/formats.md, "Hostile inputs").
    for (const auto& t : reader.header().tensors) {
        if (!core::is_float(t.dtype))
            throw Error(ErrorKind::BadInput, a.file.string(), t.name,
                        core::cat("dtype ", core::dtype_name(t.dtype),
                                  ": adapter tensors must be floating point (F32, F16, BF16, F64, F8_E4M3, F8_E5M2)"));
        a.tensors.push_back(AdapterTensor{t.name, t.dtype, t.shape, t.offset, t.nbytes});
    }
    return a;
}

}  // namespace shardforge::lora
