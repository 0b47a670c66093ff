// Adapter keys -> base tensors (PEFT's utils/save_and_load.py key names, tuners/lora/layer.py): classification,
// rank/shape cross-checks, tied embeddings.
#include <shardforge/lora.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>

namespace shardforge::lora {

namespace {
using core::Error;
using core::ErrorKind;

constexpr std::string_view prefix = "base_model.model.";
constexpr std::string_view head_name = "lm_head.weight";

bool ends_with(std::string_view s, std::string_view t) { return s.size() >= t.size() && s.substr(s.size() - t.size()) == t; }

// Removes every ".base_layer" path component (PEFT's wrapper infix).
std::string strip_base_layer(std::string s) {
    const std::string inf = ".base_layer";
    for (auto p = s.find(inf); p != std::string::npos; p = s.find(inf, p)) {
        const bool at_component_end = p + inf.size() == s.size() || s[p + inf.size()] == '.';
        if (at_component_end) s.erase(p, inf.size());
        else p += inf.size();
    }
    return s;
}

struct Group {
    std::string module;  // as in the file (may end in .base_layer for nested ParamWrappers)
    const AdapterTensor *a = nullptr, *b = nullptr, *bias = nullptr, *m = nullptr, *ea = nullptr, *eb = nullptr;
};

struct Pending {
    std::string target;  // base tensor name, or head_name for the (virtual) head of a tied model
    Term term;
    std::uint32_t adapter = 0;
};

struct Ctx {
    const std::vector<Adapter>& adapters;
    std::unordered_map<std::string, std::size_t> base_index;
    const std::vector<BaseTensor>& base;
    std::string embed;        // base name of the input embedding ("" if none)
    bool tied_on_disk = false;  // no lm_head.weight in the base, head shares `embed`
    std::vector<std::string> warnings;

    const BaseTensor* find(const std::string& n) const {
        auto it = base_index.find(n);
        return it == base_index.end() ? nullptr : &base[it->second];
    }
    // Base shape for a logical target; the virtual head of a tied model has the embedding's shape.
    const core::Shape* shape_of(const std::string& n) const {
        if (const auto* t = find(n)) return &t->shape;
        if (n == head_name && tied_on_disk) return &find(embed)->shape;
        return nullptr;
    }
};

const std::string& peft_name(const BaseTensor& bt) { return bt.peft_name.empty() ? bt.name : bt.peft_name; }
// The shape of the parameter PEFT wrapped (BaseTensor::peft_swapped).
core::Shape peft_shape(const BaseTensor& bt) {
    core::Shape s = bt.shape;
    if (bt.peft_swapped && s.size() >= 2) std::swap(s[s.size() - 1], s[s.size() - 2]);
    return s;
}

TensorRef ref(std::uint32_t i, const Adapter& a, const AdapterTensor& t) {
    return TensorRef{i, a.file.string(), t.key, t.shape};
}

[[noreturn]] void bad(const Adapter& a, const std::string& key, const std::string& why) {
    throw Error(ErrorKind::BadInput, a.file.string(), key, why);
}

std::int64_t prod_from(const core::Shape& s, std::size_t i) {
    std::int64_t p = 1;
    for (; i < s.size(); ++i) p *= s[i];
    return p;
}

std::string shape_mismatch(const std::string& what, const core::Shape& got, const std::string& base_name,
                           const core::Shape& base_shape) {
    return core::cat(what, " ", core::shape_str(got), " does not fit base tensor '", base_name, "' ",
                     core::shape_str(base_shape));
}

// Which module parameters (target_parameters) could a ParamWrapper group at `module` stand for? Ordered as the
// config lists them (our stand-in for the model's registration order).
std::vector<std::string> param_candidates(const Ctx& cx, const AdapterConfig& c, const std::string& module) {
    std::vector<std::string> out;
    for (const auto& tp : c.target_parameters) {
        for (const auto& bt : cx.base) {
            const std::string& n = peft_name(bt);
            if (n.size() <= module.size() + 1 || n.compare(0, module.size(), module) != 0 || n[module.size()] != '.')
                continue;
            const std::string p = n.substr(module.size() + 1);
            if (p.find('.') != std::string::npos) continue;
            if ((n == tp || ends_with(n, "." + tp)) && std::find(out.begin(), out.end(), bt.name) == out.end())
                out.push_back(bt.name);
        }
    }
    return out;
}

void resolve_full(Ctx& cx, std::uint32_t ia, const AdapterTensor& t, const std::string& stripped,
                  std::vector<Pending>& out) {
    const Adapter& a = cx.adapters[ia];
    const std::string target = strip_base_layer(stripped);
    const core::Shape* bs = cx.shape_of(target);
    if (!bs)
        bad(a, t.key, core::cat("full tensor (modules_to_save / bias / embedding) maps to '", target,
                                "', which the base model does not have"));
    if (*bs != t.shape) bad(a, t.key, shape_mismatch("full tensor", t.shape, target, *bs));
    if (a.weight != 1.0)
        cx.warnings.push_back(core::cat(a.file.string(), ": tensor '", t.key, "' replaces '", target,
                                        "' as a whole; the adapter weight ", a.weight, " does not apply to it"));
    Pending p;
    p.target = target;
    p.adapter = ia;
    p.term.kind = TermKind::Replace;
    p.term.a = ref(ia, a, t);
    out.push_back(std::move(p));
}

void add_dora(const Adapter& a, std::uint32_t ia, const Group& g, Term& term, std::int64_t n_out,
              const std::string& target) {
    if (!g.m) {
        if (a.config.use_dora) bad(a, g.module, "use_dora is set but the adapter has no lora_magnitude_vector for this module");
        return;
    }
    if (!a.config.use_dora) bad(a, g.m->key, "lora_magnitude_vector present but use_dora is not set in adapter_config.json");
    if (core::numel(g.m->shape) != n_out)
        bad(a, g.m->key, core::cat("magnitude vector ", core::shape_str(g.m->shape), " needs ", n_out,
                                   " elements for base tensor '", target, "'"));
    term.dora = true;
    term.m = ref(ia, a, *g.m);
}

void resolve_group(Ctx& cx, std::uint32_t ia, const Group& g, std::vector<Pending>& out) {
    const Adapter& a = cx.adapters[ia];
    const AdapterConfig& c = a.config;
    const std::string cfg_file = (a.dir / "adapter_config.json").string();
    // Nested ParamWrappers: "<module>.base_layer.lora_A.weight" is the inner wrapper (depth 1), etc.
    std::string module = g.module;
    int depth = 0;
    while (ends_with(module, ".base_layer")) {
        module.resize(module.size() - std::string_view(".base_layer").size());
        ++depth;
    }
    module = strip_base_layer(module);
    const double w = a.weight;
    // f32(scaling x weight); an alpha such as 1e308 gives a scale no f32 holds (and the cast would be undefined):
    // refused naming the config, before any output exists.
    auto term_scale = [&](double scaling) {
        const double s = scaling * w;
        if (!(std::fabs(s) <= static_cast<double>(std::numeric_limits<float>::max())))
            throw Error(ErrorKind::BadInput, cfg_file, "",
                        core::cat("LoRA scale of '", module, "' (lora_alpha / r x weight) is ", s,
                                  ", beyond the f32 range"));
        return static_cast<float>(s);
    };

    if (g.ea || g.eb) {  // ---- Embedding
        if (!g.ea || !g.eb) bad(a, (g.ea ? g.ea : g.eb)->key, "lora_embedding_A and lora_embedding_B must come in pairs");
        if (g.a || g.b) bad(a, g.ea->key, "module has both lora_embedding_* and lora_A/lora_B keys");
        if (g.bias) bad(a, g.bias->key, "lora_bias is not allowed on embeddings");
        const auto &A = *g.ea, &B = *g.eb;
        if (A.shape.size() != 2 || B.shape.size() != 2 || B.shape[1] != A.shape[0])
            bad(a, A.key, core::cat("lora_embedding_A ", core::shape_str(A.shape), " and lora_embedding_B ",
                                    core::shape_str(B.shape), " are not (r, vocab) and (dim, r)"));
        const std::string target = module + ".weight";
        const core::Shape* bs = cx.shape_of(target);
        if (!bs) bad(a, A.key, core::cat("LoRA targets '", target, "', which the base model does not have"));
        const core::Shape want{A.shape[1], B.shape[0]};
        if (*bs != want) bad(a, A.key, shape_mismatch("embedding delta", want, target, *bs));
        const ModuleScale ms = module_scale(c, module, cfg_file);
        if (A.shape[0] != ms.r)
            bad(a, A.key, core::cat("rank ", A.shape[0], " in the file, but adapter_config.json gives r=", ms.r,
                                    " for '", module, "'"));
        Pending p;
        p.target = target;
        p.adapter = ia;
        p.term.kind = TermKind::Embedding;
        p.term.a = ref(ia, a, A);
        p.term.b = ref(ia, a, B);
        p.term.rank = ms.r;
        p.term.scale = term_scale(ms.scaling);
        add_dora(a, ia, g, p.term, B.shape[0], target);
        if (p.term.dora && w != 1.0)
            cx.warnings.push_back(core::cat(a.file.string(), ": DoRA module '", module, "' with adapter weight ", w,
                                            ": the weight scales the delta before the magnitude renormalisation"));
        out.push_back(std::move(p));
        return;
    }
    if (!g.a || !g.b) {
        const AdapterTensor* any = g.a ? g.a : g.b ? g.b : g.bias ? g.bias : g.m;
        bad(a, any->key, "lora_A.weight and lora_B.weight must come in pairs");
    }
    const auto &A = *g.a, &B = *g.b;
    if (A.shape.size() < 2 || B.shape.size() < 2 || B.shape[1] != A.shape[0] || prod_from(B.shape, 2) != 1)
        bad(a, A.key, core::cat("lora_A ", core::shape_str(A.shape), " and lora_B ", core::shape_str(B.shape),
                                " are not (r, in, ...) and (out, r, 1...)"));
    const std::int64_t r_file = A.shape[0], n_out = B.shape[0], n_in = prod_from(A.shape, 1);

    // ---- target_parameters (ParamWrapper) on 2-D or 3-D parameters
    if (!c.target_parameters.empty()) {
        const auto cands = param_candidates(cx, c, module);
        if (!cands.empty()) {
            if (A.shape.size() != 2) bad(a, A.key, "lora_A of a target_parameters module must be 2-D");
            auto fits = [&](const core::Shape& s) {
                if (s.size() == 2) return s == core::Shape{n_out, n_in};
                if (s.size() == 3 && s[0] > 0 && r_file % s[0] == 0)
                    return (s[1] == n_out && s[2] == n_in) || (s[1] == n_in && s[2] == n_out);
                return false;
            };
            std::vector<std::string> ok;
            for (const auto& n : cands)
                if (fits(peft_shape(*cx.find(n)))) ok.push_back(n);
            std::string target;
            if (ok.size() == 1) target = ok[0];
            else if (ok.size() > 1) {
                // Nested wrappers: the outermost (depth 0) wraps the parameter registered last.
                const int idx = static_cast<int>(cands.size()) - 1 - depth;
                if (idx >= 0 && std::find(ok.begin(), ok.end(), cands[static_cast<std::size_t>(idx)]) != ok.end())
                    target = cands[static_cast<std::size_t>(idx)];
                else
                    bad(a, A.key, core::cat("cannot tell which of ", ok.size(), " parameters of '", module,
                                            "' this LoRA targets (shapes are ambiguous)"));
            } else {
                const BaseTensor& b0 = *cx.find(cands[0]);
                bad(a, A.key, core::cat("lora_A ", core::shape_str(A.shape), " / lora_B ", core::shape_str(B.shape),
                                        " fit no target parameter of '", module, "' (e.g. '", peft_name(b0), "' ",
                                        core::shape_str(peft_shape(b0)), ")"));
            }
            if (g.m) bad(a, g.m->key, "DoRA is not allowed with target_parameters");
            if (g.bias) bad(a, g.bias->key, "lora_bias is not allowed with target_parameters");
            const BaseTensor& bt = *cx.find(target);
            const core::Shape bs = peft_shape(bt);
            const ModuleScale ms = module_scale(c, peft_name(bt), cfg_file);
            Pending p;
            p.target = target;
            p.adapter = ia;
            p.term.a = ref(ia, a, A);
            p.term.b = ref(ia, a, B);
            p.term.scale = term_scale(ms.scaling);
            if (bs.size() == 2) {
                if (r_file != ms.r)
                    bad(a, A.key, core::cat("rank ", r_file, " in the file, but adapter_config.json gives r=", ms.r,
                                            " for '", target, "'"));
                p.term.kind = TermKind::Linear;
                p.term.rank = ms.r;
            } else {
                const std::int64_t e = bs[0];
                if (r_file != ms.r * e)
                    bad(a, A.key, core::cat("lora_A has ", r_file, " rows, expected r*E = ", ms.r, "*", e,
                                            " for '", target, "' (r from adapter_config.json)"));
                p.term.kind = TermKind::Param3D;
                p.term.rank = ms.r;
                p.term.n_experts = e;
                // PEFT's ParamWrapper reads a 3-D parameter as (E, in, out) (num_experts, in_features,
                // out_features = param.shape; delta einsum "o r e, e r i -> e i o"), the layout of transformers'
                // gpt-oss and Llama 4 experts; (E, out, in) is taken only where the shapes fit nothing else. A square
                // expert (gpt-oss's down_proj, 2880 x 2880) is therefore (E, in, out).
                const bool as_out_in = bs[1] == n_out && bs[2] == n_in && n_out != n_in;
                // In the stored tensor's coordinates: a swapped one is PEFT's parameter transposed per expert.
                p.term.transposed = bt.peft_swapped ? as_out_in : !as_out_in;
            }
            out.push_back(std::move(p));
            return;
        }
    }

    // ---- Linear / Conv
    const std::string target = module + ".weight";
    const core::Shape* bsp = cx.shape_of(target);
    if (!bsp) bad(a, A.key, core::cat("LoRA targets '", target, "', which the base model does not have"));
    const core::Shape& bs = *bsp;
    const ModuleScale ms = module_scale(c, module, cfg_file);
    if (r_file != ms.r)
        bad(a, A.key, core::cat("rank ", r_file, " in the file, but adapter_config.json gives r=", ms.r, " for '",
                                module, "'"));
    Pending p;
    p.target = target;
    p.adapter = ia;
    p.term.kind = TermKind::Linear;
    p.term.a = ref(ia, a, A);
    p.term.b = ref(ia, a, B);
    p.term.rank = ms.r;
    p.term.scale = term_scale(ms.scaling);
    if (A.shape.size() > 2) {  // Conv: base (out, in/groups, k...), A (r, in, k...), B (out, r, 1...)
        if (bs.size() != A.shape.size() || bs[0] != n_out) bad(a, A.key, shape_mismatch("conv delta", {n_out, n_in}, target, bs));
        if (bs[1] != A.shape[1] && bs[1] > 0 && A.shape[1] % bs[1] == 0)
            throw Error(ErrorKind::Unsupported, a.file.string(), A.key,
                        core::cat("'", target, "' is a grouped convolution (groups=", A.shape[1] / bs[1],
                                  "); PEFT refuses to merge those"));
        if (!std::equal(bs.begin() + 1, bs.end(), A.shape.begin() + 1))
            bad(a, A.key, shape_mismatch("lora_A", A.shape, target, bs));
    } else {
        if (bs.size() != 2) bad(a, A.key, shape_mismatch("linear delta", {n_out, n_in}, target, bs));
        const bool fits_out_in = bs[0] == n_out && bs[1] == n_in;
        const bool fits_in_out = bs[0] == n_in && bs[1] == n_out;
        if (!fits_out_in && !fits_in_out) bad(a, A.key, shape_mismatch("delta (out, in) =", {n_out, n_in}, target, bs));
        bool fifo = c.fan_in_fan_out;
        if (fits_out_in && fits_in_out) {
            // square: honour the flag
        } else if (fifo && !fits_in_out) {
            fifo = false;  // PEFT forces False for nn.Linear (dispatch_default)
            cx.warnings.push_back(core::cat("'", target, "' is stored (out, in): ignoring fan_in_fan_out=true as PEFT does for nn.Linear"));
        } else if (!fifo && !fits_out_in) {
            fifo = true;  // Conv1D-style base (GPT-2): PEFT forces True
            cx.warnings.push_back(core::cat("'", target, "' is stored (in, out): treating it as fan_in_fan_out (Conv1D) as PEFT does"));
        }
        p.term.fan_in_fan_out = fifo;
    }
    add_dora(a, ia, g, p.term, n_out, target);
    if (p.term.dora && w != 1.0)
        cx.warnings.push_back(core::cat(a.file.string(), ": DoRA module '", module, "' with adapter weight ", w,
                                        ": the weight scales the delta before the magnitude renormalisation"));
    if (g.bias) {
        if (p.term.dora) throw Error(ErrorKind::Unsupported, a.file.string(), g.bias->key, "lora_bias with DoRA (PEFT forbids it)");
        const std::string bname = module + ".bias";
        const core::Shape* bb = cx.shape_of(bname);
        if (!bb) bad(a, g.bias->key, core::cat("lora_B.bias needs base tensor '", bname, "', which the base model does not have"));
        if (*bb != core::Shape{n_out} || g.bias->shape != core::Shape{n_out})
            bad(a, g.bias->key, shape_mismatch("lora_B.bias", g.bias->shape, bname, *bb));
        Pending pb;
        pb.target = bname;
        pb.adapter = ia;
        pb.term.kind = TermKind::BiasDelta;
        pb.term.a = ref(ia, a, *g.bias);
        pb.term.scale = p.term.scale;
        out.push_back(std::move(p));
        out.push_back(std::move(pb));
        return;
    }
    out.push_back(std::move(p));
}

std::optional<bool> tie_flag(const nlohmann::json& cfg) {
    if (!cfg.is_object()) return std::nullopt;
    if (cfg.contains("tie_word_embeddings") && cfg["tie_word_embeddings"].is_boolean())
        return cfg["tie_word_embeddings"].get<bool>();
    if (cfg.contains("text_config") && cfg["text_config"].is_object()) {
        const auto& t = cfg["text_config"];
        if (t.contains("tie_word_embeddings") && t["tie_word_embeddings"].is_boolean())
            return t["tie_word_embeddings"].get<bool>();
    }
    return std::nullopt;
}

bool is_head_module(const std::string& target) { return target == head_name; }

// transformers' vision-language classes (Mistral3ForConditionalGeneration, Gemma3ForConditionalGeneration, ...)
// name their modules "model.language_model.*" / "lm_head" since 4.52, while their checkpoints keep the older
// "language_model.model.*" / "language_model.lm_head" names (the classes' _checkpoint_conversion_mapping). PEFT
// saves the module names of the model it ran on, so an adapter and its base may use either spelling.
struct PrefixAlias {
    std::string_view from, to;
};
constexpr PrefixAlias layout_aliases[] = {
    {"model.language_model.", "language_model.model."}, {"language_model.model.", "model.language_model."},
    {"lm_head.", "language_model.lm_head."},            {"language_model.lm_head.", "lm_head."},
    {"model.vision_tower.", "vision_tower."},           {"vision_tower.", "model.vision_tower."},
    {"model.multi_modal_projector.", "multi_modal_projector."},
    {"multi_modal_projector.", "model.multi_modal_projector."},
};

// The aliases that apply to this base: the base has no tensor under `from` and some under `to`.
std::vector<PrefixAlias> base_aliases(const std::vector<BaseTensor>& base) {
    std::vector<PrefixAlias> out;
    for (const PrefixAlias& al : layout_aliases) {
        bool has_from = false, has_to = false;
        for (const auto& bt : base) {
            has_from = has_from || bt.name.starts_with(al.from);
            has_to = has_to || bt.name.starts_with(al.to);
        }
        if (!has_from && has_to) out.push_back(al);
    }
    return out;
}
}  // namespace

Resolution resolve(const std::vector<Adapter>& adapters, const std::vector<BaseTensor>& base,
                   const nlohmann::json& base_config) {
    Ctx cx{adapters, {}, base, {}, false, {}};
    for (std::size_t i = 0; i < base.size(); ++i) cx.base_index.emplace(base[i].name, i);
    for (const char* e : {"model.embed_tokens.weight", "model.language_model.embed_tokens.weight",
                          "language_model.model.embed_tokens.weight", "transformer.wte.weight"})
        if (cx.find(e)) {
            cx.embed = e;
            break;
        }
    if (cx.embed.empty())
        for (const auto& bt : base)
            if (ends_with(bt.name, "embed_tokens.weight")) {
                cx.embed = bt.name;
                break;
            }
    const std::optional<bool> flag = tie_flag(base_config);
    const bool has_head = cx.find(std::string(head_name)) != nullptr || cx.find("language_model.lm_head.weight");
    const std::vector<PrefixAlias> aliases = base_aliases(base);
    cx.tied_on_disk = !has_head && !cx.embed.empty() && flag.value_or(true);

    std::vector<Pending> pend;
    for (std::uint32_t ia = 0; ia < adapters.size(); ++ia) {
        const Adapter& a = adapters[ia];
        std::vector<Group> groups;
        std::map<std::string, std::size_t> gidx;
        auto group = [&](const std::string& m) -> Group& {
            auto [it, fresh] = gidx.emplace(m, groups.size());
            if (fresh) groups.push_back(Group{m});
            return groups[it->second];
        };
        std::vector<Pending> fulls;
        for (const auto& t : a.tensors) {
            std::string k = t.key;
            if (k.rfind(prefix, 0) == 0) k.erase(0, prefix.size());
            for (const PrefixAlias& al : aliases)
                if (k.starts_with(al.from)) {
                    k = std::string(al.to) + k.substr(al.from.size());
                    break;
                }
            struct Suffix {
                std::string_view s;
                const AdapterTensor* Group::*slot;
            };
            static const Suffix suffixes[] = {
                {".lora_A.weight", &Group::a},          {".lora_B.weight", &Group::b},
                {".lora_B.bias", &Group::bias},         {".lora_embedding_A", &Group::ea},
                {".lora_embedding_B", &Group::eb},      {".lora_magnitude_vector", &Group::m},
                {".lora_magnitude_vector.weight", &Group::m},
            };
            bool done = false;
            for (const auto& s : suffixes) {
                if (ends_with(k, s.s) && k.size() > s.s.size()) {
                    Group& g = group(k.substr(0, k.size() - s.s.size()));
                    if (g.*s.slot) bad(a, t.key, "duplicate LoRA tensor for this module");
                    g.*s.slot = &t;
                    done = true;
                    break;
                }
            }
            if (done) continue;
            if (k.find("trainable_tokens_") != std::string::npos)
                throw Error(ErrorKind::Unsupported, a.file.string(), t.key, "trainable tokens are not supported yet");
            if (k.find(".lora_") != std::string::npos || k.rfind("lora_", 0) == 0)
                throw Error(ErrorKind::Unsupported, a.file.string(), t.key,
                            "unrecognised LoRA tensor (not lora_A/lora_B/lora_embedding_A/B/lora_magnitude_vector)");
            resolve_full(cx, ia, t, k, fulls);
        }
        for (auto& p : fulls) pend.push_back(std::move(p));
        std::vector<Pending> deltas;
        for (const auto& g : groups) resolve_group(cx, ia, g, deltas);
        for (std::size_t i = 0; i < deltas.size(); ++i)
            for (std::size_t j = 0; j < i; ++j)
                if (deltas[i].target == deltas[j].target)
                    bad(a, deltas[i].term.a.key, core::cat("two LoRA modules of this adapter land on '",
                                                           deltas[i].target, "'"));
        for (auto& p : deltas) pend.push_back(std::move(p));
    }

    Resolution res;
    // ---- tied embeddings (PEFT merges into the shared tensor; we untie)
    auto touches = [&](const Pending& p, bool head) {
        return head ? is_head_module(p.target) : (!cx.embed.empty() && p.target == cx.embed);
    };
    if (cx.tied_on_disk) {
        // ensure_weight_tying: the head's LoRA equals the embedding's; apply once to the shared tensor.
        std::vector<Pending> kept;
        for (auto& p : pend) {
            const Adapter& a = adapters[p.adapter];
            if (touches(p, true) && a.config.ensure_weight_tying) {
                const bool emb_too = std::any_of(pend.begin(), pend.end(), [&](const Pending& q) {
                    return q.adapter == p.adapter && touches(q, false) && (q.term.kind == TermKind::Replace) == (p.term.kind == TermKind::Replace);
                });
                if (emb_too) continue;  // same delta already on embed_tokens
                p.target = cx.embed;   // shared tensor gets it once
            }
            kept.push_back(std::move(p));
        }
        pend = std::move(kept);
        bool untie = false;
        for (const auto& p : pend)
            if (touches(p, true) || (touches(p, false) && !adapters[p.adapter].config.ensure_weight_tying)) untie = true;
        if (untie) {
            // The head gets its own copy of every shared (ensure_weight_tying) term too.
            std::vector<Pending> copies;
            for (const auto& p : pend)
                if (touches(p, false) && adapters[p.adapter].config.ensure_weight_tying) {
                    copies.push_back(p);
                    copies.back().target = std::string(head_name);
                }
            for (auto& p : copies) pend.push_back(std::move(p));
            std::stable_sort(pend.begin(), pend.end(), [](const Pending& x, const Pending& y) {
                const auto kx = std::make_pair(x.adapter, x.term.kind != TermKind::Replace);
                const auto ky = std::make_pair(y.adapter, y.term.kind != TermKind::Replace);
                return kx < ky;
            });
            res.untie_embeddings = true;
            res.warnings.push_back(core::cat("tied embeddings: the adapters change '", cx.embed,
                                             "' and/or the output head differently; writing a separate '", head_name,
                                             "' (copy of '", cx.embed, "' plus its own terms) and "
                                             "tie_word_embeddings=false"));
        }
    } else if (flag.value_or(false) && has_head) {
        for (const auto& p : pend)
            if ((touches(p, true) || touches(p, false)) && !adapters[p.adapter].config.ensure_weight_tying)
                res.untie_embeddings = true;
        if (res.untie_embeddings)
            res.warnings.push_back("tie_word_embeddings=true but the adapters touch the embedding/head; the output "
                                   "config must set tie_word_embeddings=false to keep both tensors");
    }

    // ---- group into targets, ordered as the base (the untied head right after its source)
    std::map<std::string, MergeTarget> by_out;
    for (auto& p : pend) {
        auto& t = by_out[p.target];
        if (t.out_name.empty()) {
            t.out_name = p.target;
            t.base_name = (is_head_module(p.target) && cx.tied_on_disk) ? cx.embed : p.target;
        }
        t.terms.push_back(std::move(p.term));
    }
    if (res.untie_embeddings && cx.tied_on_disk && !by_out.count(std::string(head_name))) {
        auto& t = by_out[std::string(head_name)];  // plain copy of the (unchanged) embedding
        t.out_name = std::string(head_name);
        t.base_name = cx.embed;
    }
    for (auto& [name, t] : by_out) res.targets.push_back(std::move(t));
    auto order = [&](const MergeTarget& t) {
        return std::make_pair(cx.base_index.at(t.base_name), t.out_name == t.base_name ? 0 : 1);
    };
    std::stable_sort(res.targets.begin(), res.targets.end(),
                     [&](const MergeTarget& x, const MergeTarget& y) { return order(x) < order(y); });
    for (const auto& wmsg : cx.warnings) res.warnings.push_back(wmsg);
    for (const auto& wmsg : res.warnings) core::log::warn(wmsg);
    return res;
}

void validate_adapter(const Adapter& adapter, const std::vector<BaseTensor>& base, const nlohmann::json& base_config) {
    std::vector<Adapter> one;
    one.push_back(adapter);
    (void)resolve(one, base, base_config);
}

}  // namespace shardforge::lora
