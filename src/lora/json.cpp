// MergeTarget <-> JSON for the plan (--dry-run, broadcast, resume journal). Floats round-trip exactly (the scale is
// stored as a double holding the f32 value).
#include <shardforge/lora.hpp>

#include <nlohmann/json.hpp>

namespace shardforge::lora {

namespace {
using core::Error;
using core::ErrorKind;
using nlohmann::json;

json ref_json(const TensorRef& r) { return json{{"adapter", r.adapter}, {"file", r.file}, {"key", r.key}, {"shape", r.shape}}; }

TensorRef ref_from(const json& j) {
    TensorRef r;
    r.adapter = j.at("adapter").get<std::uint32_t>();
    r.file = j.at("file").get<std::string>();
    r.key = j.at("key").get<std::string>();
    r.shape = j.at("shape").get<core::Shape>();
    return r;
}

TermKind kind_from(const std::string& s) {
    for (TermKind k : {TermKind::Replace, TermKind::Linear, TermKind::Embedding, TermKind::Param3D, TermKind::BiasDelta})
        if (to_string(k) == s) return k;
    throw Error(ErrorKind::BadInput, "", "", core::cat("unknown LoRA term kind '", s, "'"));
}
}  // namespace

nlohmann::json to_json(const MergeTarget& t) {
    json terms = json::array();
    for (const Term& x : t.terms) {
        json j{{"kind", std::string(to_string(x.kind))}, {"a", ref_json(x.a)}, {"scale", static_cast<double>(x.scale)}};
        if (x.kind != TermKind::Replace && x.kind != TermKind::BiasDelta) {
            j["b"] = ref_json(x.b);
            j["rank"] = x.rank;
        }
        if (x.dora) {
            j["dora"] = true;
            j["m"] = ref_json(x.m);
        }
        if (x.fan_in_fan_out) j["fan_in_fan_out"] = true;
        if (x.kind == TermKind::Param3D) {
            j["n_experts"] = x.n_experts;
            j["transposed"] = x.transposed;
        }
        terms.push_back(std::move(j));
    }
    return json{{"base_name", t.base_name}, {"out_name", t.out_name}, {"terms", std::move(terms)}};
}

MergeTarget merge_target_from_json(const nlohmann::json& j) {
    try {
        MergeTarget t;
        t.base_name = j.at("base_name").get<std::string>();
        t.out_name = j.at("out_name").get<std::string>();
        for (const auto& x : j.at("terms")) {
            Term term;
            term.kind = kind_from(x.at("kind").get<std::string>());
            term.a = ref_from(x.at("a"));
            term.scale = static_cast<float>(x.at("scale").get<double>());
            if (x.contains("b")) term.b = ref_from(x["b"]);
            term.rank = x.value("rank", std::int64_t{0});
            term.dora = x.value("dora", false);
            if (term.dora) term.m = ref_from(x.at("m"));
            term.fan_in_fan_out = x.value("fan_in_fan_out", false);
            term.n_experts = x.value("n_experts", std::int64_t{0});
            term.transposed = x.value("transposed", false);
            t.terms.push_back(std::move(term));
        }
        return t;
    } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorKind::BadInput, "", "", core::cat("malformed LoRA merge target in plan JSON: ", e.what()));
    }
}

}  // namespace shardforge::lora
