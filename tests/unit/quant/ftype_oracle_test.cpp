// Oracle test for the per-tensor type choice: compares choose_types() with the reference libllama that
// node-llama-cpp ships (release de3ff81), through its exported test hooks llama_quant_model_from_metadata /
// llama_quant_init / llama_quant_compute_types (src/llama-ext.h), which run llama-quantize's own
// llama_tensor_get_type on ggml tensor headers (no data). Tensors are handed over in llama-quantize's order
// (weights_map), as llama_model_quantize does. Skips when the library is absent.
//
// Differences of the hook from a real llama_model_quantize run, avoided here: has_imatrix is always false, and
// the mock model is LLM_TYPE_70B only for llama (not qwen2/deci/olmo/jais2).
#include <shardforge/quant.hpp>

#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace sf = shardforge;
using sf::quant::FType;
using sf::quant::GgmlType;
using sf::quant::ModelFacts;
using sf::quant::Overrides;
using sf::quant::QuantTensor;

namespace {

// ---- mirrors of the reference C ABI (llama.h, ggml.h, llama-ext.h of de3ff81)
struct GgmlInitParams {
    std::size_t mem_size;
    void* mem_buffer;
    bool no_alloc;
};
struct LlamaQuantModelDesc {
    const char* architecture;
    std::uint32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_expert, n_embd_head_k, n_embd_head_v;
};
struct LlamaTensorOverride {
    const char* pattern;
    int type;
};
struct LlamaQuantizeParams {
    std::int32_t nthread;
    int ftype, output_tensor_type, token_embedding_type;
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const void* imatrix;
    const void* kv_overrides;
    const LlamaTensorOverride* tt_overrides;
    const std::int32_t* prune_layers;
    std::size_t max_buf_size;
};
static_assert(sizeof(LlamaQuantizeParams) == 64, "llama_model_quantize_params layout");
constexpr int ggml_type_count_ref = 43;

class Oracle {
public:
    static Oracle& get() {
        static Oracle o;
        return o;
    }
    bool ok() const { return ok_; }
    const std::string& why() const { return why_; }

    // Types chosen by llama-quantize for `tensors`, index-aligned (the call is made in quantize_order()).
    std::vector<int> compute(const LlamaQuantModelDesc& desc, const std::vector<QuantTensor>& tensors, FType ftype,
                             const Overrides& ov, bool only_copy) {
        void* model = model_from_metadata_(&desc);
        LlamaQuantizeParams p = default_params_();
        p.ftype = static_cast<int>(ftype);
        p.output_tensor_type = ov.output_type == sf::quant::unset_type ? ggml_type_count_ref
                                                                       : static_cast<int>(ov.output_type);
        p.token_embedding_type = ov.token_embd_type == sf::quant::unset_type ? ggml_type_count_ref
                                                                             : static_cast<int>(ov.token_embd_type);
        p.quantize_output_tensor = !ov.leave_output;
        p.only_copy = only_copy;
        p.pure = ov.pure;
        std::vector<LlamaTensorOverride> tt;
        for (const auto& o : ov.tensor_types) tt.push_back({o.pattern.c_str(), static_cast<int>(o.type)});
        tt.push_back({nullptr, ggml_type_count_ref});
        if (!ov.tensor_types.empty()) p.tt_overrides = tt.data();
        void* qs = quant_init_(model, &p);

        GgmlInitParams ip{(tensors.size() + 8) * tensor_overhead_() + 4096, nullptr, true};
        void* ctx = ggml_init_(ip);
        const auto order = sf::quant::quantize_order(tensors);
        std::vector<void*> ts;
        for (std::size_t k : order) {
            const auto& t = tensors[k];
            std::int64_t ne[4] = {1, 1, 1, 1};
            for (std::size_t d = 0; d < t.ne.size() && d < 4; ++d) ne[d] = t.ne[d];
            void* g = new_tensor_(ctx, static_cast<int>(t.type), static_cast<int>(t.ne.size()), ne);
            set_name_(g, t.name.c_str());
            ts.push_back(g);
        }
        std::vector<int> res(ts.size(), -1);
        compute_types_(qs, static_cast<int>(ftype), ts.data(), res.data(), ts.size());
        std::vector<int> out(tensors.size(), -1);
        for (std::size_t i = 0; i < order.size(); ++i) out[order[i]] = res[i];
        ggml_free_(ctx);
        quant_free_(qs);
        model_free_(model);
        return out;
    }

    // A real `llama-quantize --dry-run` of a GGUF file: llama_model_quantize with dry_run, its per-tensor log
    // lines parsed into name -> ggml type name. Empty map on failure.
    std::map<std::string, std::string> dry_run(const std::string& path, FType ftype) {
        LlamaQuantizeParams p = default_params_();
        p.ftype = static_cast<int>(ftype);
        p.dry_run = true;
        p.nthread = 1;
        static std::string log;
        log.clear();
        log_set_([](int, const char* text, void*) { log += text; }, nullptr);
        const auto rc = quantize_(path.c_str(), (path + ".out").c_str(), &p);
        log_set_([](int, const char*, void*) {}, nullptr);
        std::map<std::string, std::string> out;
        if (rc != 0) {
            ADD_FAILURE() << "llama_model_quantize failed:\n" << log;
            return out;
        }
        // "[   1/ 147]                        output.weight - [  256,    32,     1,     1], type =    f16, size = ... (q6_K)"
        static const std::regex line(R"(\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size = [^\n(]*(\((\S+)\))?)");
        for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
            const auto& mt = *it;
            out[mt[1].str()] = mt[4].matched ? mt[4].str() : mt[2].str();
        }
        if (std::getenv("SF_FTYPE_DEBUG")) std::fprintf(stderr, "%s\n", log.substr(log.size() > 9000 ? log.size() - 9000 : 0, 1500).c_str());
        return out;
    }

private:
    Oracle() {
        std::string dir;
        if (const char* e = std::getenv("SHARDFORGE_LLAMA_LIB_DIR")) {
            dir = e;
        } else {
            std::string src;
            if (const char* s = std::getenv("SHARDFORGE_SOURCE_DIR")) {
                src = s;
            } else {
                src = SHARDFORGE_TEST_SOURCE_DIR;
            }
            dir = src + "/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";
        }
        base_ = dlopen((dir + "/libggml-base.so").c_str(), RTLD_NOW | RTLD_LOCAL);
        llama_ = base_ ? dlopen((dir + "/libllama.v0.5.0.so").c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
        if (!base_ || !llama_) {
            why_ = "reference libllama not found in " + dir + " (" + (dlerror() ? "dlopen failed" : "?") +
                   "); run `npm ci` in tests/conformance or set SHARDFORGE_LLAMA_LIB_DIR";
            return;
        }
        bool all = true;
        auto sym = [&](void* lib, const char* name) {
            void* s = dlsym(lib, name);
            if (!s) {
                all = false;
                why_ += std::string("missing symbol ") + name + "; ";
            }
            return s;
        };
        ggml_init_ = reinterpret_cast<void* (*)(GgmlInitParams)>(sym(base_, "ggml_init"));
        ggml_free_ = reinterpret_cast<void (*)(void*)>(sym(base_, "ggml_free"));
        tensor_overhead_ = reinterpret_cast<std::size_t (*)()>(sym(base_, "ggml_tensor_overhead"));
        new_tensor_ = reinterpret_cast<void* (*)(void*, int, int, const std::int64_t*)>(sym(base_, "ggml_new_tensor"));
        set_name_ = reinterpret_cast<void* (*)(void*, const char*)>(sym(base_, "ggml_set_name"));
        log_set_ = reinterpret_cast<void (*)(void (*)(int, const char*, void*), void*)>(sym(llama_, "llama_log_set"));
        default_params_ = reinterpret_cast<LlamaQuantizeParams (*)()>(sym(llama_, "llama_model_quantize_default_params"));
        model_free_ = reinterpret_cast<void (*)(void*)>(sym(llama_, "llama_model_free"));
        model_from_metadata_ = reinterpret_cast<void* (*)(const LlamaQuantModelDesc*)>(
            sym(llama_, "_Z31llama_quant_model_from_metadataPK22llama_quant_model_desc"));
        quant_init_ = reinterpret_cast<void* (*)(void*, const LlamaQuantizeParams*)>(
            sym(llama_, "_Z16llama_quant_initPK11llama_modelPK27llama_model_quantize_params"));
        quant_free_ = reinterpret_cast<void (*)(void*)>(sym(llama_, "_Z16llama_quant_freeP19quantize_state_impl"));
        quantize_ = reinterpret_cast<std::uint32_t (*)(const char*, const char*, const LlamaQuantizeParams*)>(
            sym(llama_, "llama_model_quantize"));
        compute_types_ = reinterpret_cast<void (*)(void*, int, void**, int*, std::size_t)>(
            sym(llama_, "_Z25llama_quant_compute_typesP19quantize_state_impl11llama_ftypePP11ggml_tensorP9ggml_typem"));
        if (!all) return;
        log_set_([](int, const char*, void*) {}, nullptr);  // silence fallback warnings
        ok_ = true;
    }

    bool ok_ = false;
    std::string why_;
    void* base_ = nullptr;
    void* llama_ = nullptr;
    void* (*ggml_init_)(GgmlInitParams) = nullptr;
    void (*ggml_free_)(void*) = nullptr;
    std::size_t (*tensor_overhead_)() = nullptr;
    void* (*new_tensor_)(void*, int, int, const std::int64_t*) = nullptr;
    void* (*set_name_)(void*, const char*) = nullptr;
    void (*log_set_)(void (*)(int, const char*, void*), void*) = nullptr;
    LlamaQuantizeParams (*default_params_)() = nullptr;
    void (*model_free_)(void*) = nullptr;
    void* (*model_from_metadata_)(const LlamaQuantModelDesc*) = nullptr;
    void* (*quant_init_)(void*, const LlamaQuantizeParams*) = nullptr;
    void (*quant_free_)(void*) = nullptr;
    void (*compute_types_)(void*, int, void**, int*, std::size_t) = nullptr;
    std::uint32_t (*quantize_)(const char*, const char*, const LlamaQuantizeParams*) = nullptr;
};

// ---- synthetic models (names and shapes as convert_hf_to_gguf writes them; no data needed)
struct Model {
    std::string label;
    ModelFacts facts;
    LlamaQuantModelDesc desc;
    std::vector<QuantTensor> tensors;
};

void add(std::vector<QuantTensor>& v, std::string name, std::vector<std::int64_t> ne, GgmlType t = GgmlType::F16) {
    if (ne.size() == 1) t = GgmlType::F32;
    v.push_back({std::move(name), std::move(ne), t});
}

std::string blk(int i, const char* s) { return "blk." + std::to_string(i) + "." + s; }

struct LlamaShape {
    std::string arch = "llama";
    int n_layer, n_embd, n_ff, n_head, n_head_kv, n_vocab;
    bool tied = false;
    int n_expert = 0;
    bool rope_freqs = false;
};

Model make_llama(const std::string& label, const LlamaShape& s) {
    Model m;
    m.label = label;
    m.facts = {s.arch, s.n_layer, s.n_head, s.n_head_kv, s.n_expert};
    const int hd = s.n_embd / s.n_head;
    const int kv = hd * s.n_head_kv;
    auto& v = m.tensors;
    add(v, "token_embd.weight", {s.n_embd, s.n_vocab});
    if (s.rope_freqs) add(v, "rope_freqs.weight", {hd / 2});
    for (int i = 0; i < s.n_layer; ++i) {
        add(v, blk(i, "attn_norm.weight"), {s.n_embd});
        add(v, blk(i, "attn_q.weight"), {s.n_embd, s.n_embd});
        add(v, blk(i, "attn_k.weight"), {s.n_embd, kv});
        add(v, blk(i, "attn_v.weight"), {s.n_embd, kv});
        add(v, blk(i, "attn_output.weight"), {s.n_embd, s.n_embd});
        add(v, blk(i, "ffn_norm.weight"), {s.n_embd});
        if (s.n_expert > 1) {
            add(v, blk(i, "ffn_gate_inp.weight"), {s.n_embd, s.n_expert}, GgmlType::F32);
            add(v, blk(i, "ffn_gate_exps.weight"), {s.n_embd, s.n_ff, s.n_expert});
            add(v, blk(i, "ffn_up_exps.weight"), {s.n_embd, s.n_ff, s.n_expert});
            add(v, blk(i, "ffn_down_exps.weight"), {s.n_ff, s.n_embd, s.n_expert});
        } else {
            add(v, blk(i, "ffn_gate.weight"), {s.n_embd, s.n_ff});
            add(v, blk(i, "ffn_up.weight"), {s.n_embd, s.n_ff});
            add(v, blk(i, "ffn_down.weight"), {s.n_ff, s.n_embd});
        }
    }
    add(v, "output_norm.weight", {s.n_embd});
    if (!s.tied) add(v, "output.weight", {s.n_embd, s.n_vocab});
    m.desc = {nullptr, static_cast<std::uint32_t>(s.n_embd), static_cast<std::uint32_t>(s.n_ff),
              static_cast<std::uint32_t>(s.n_layer), static_cast<std::uint32_t>(s.n_head),
              static_cast<std::uint32_t>(s.n_head_kv), static_cast<std::uint32_t>(s.n_expert),
              static_cast<std::uint32_t>(hd), static_cast<std::uint32_t>(hd)};
    return m;
}

Model make_qwen3moe() {  // Qwen3-30B-A3B-like: 48 layers, 128 experts, q/k norms, head_dim 128
    Model m;
    m.label = "qwen3moe";
    const int L = 48, E = 2048, H = 32, KV = 4, HD = 128, FF = 768, X = 128, V = 151936;
    m.facts = {"qwen3moe", L, H, KV, X};
    auto& v = m.tensors;
    add(v, "token_embd.weight", {E, V});
    for (int i = 0; i < L; ++i) {
        add(v, blk(i, "attn_norm.weight"), {E});
        add(v, blk(i, "attn_q.weight"), {E, H * HD});
        add(v, blk(i, "attn_q_norm.weight"), {HD});
        add(v, blk(i, "attn_k.weight"), {E, KV * HD});
        add(v, blk(i, "attn_k_norm.weight"), {HD});
        add(v, blk(i, "attn_v.weight"), {E, KV * HD});
        add(v, blk(i, "attn_output.weight"), {H * HD, E});
        add(v, blk(i, "ffn_norm.weight"), {E});
        add(v, blk(i, "ffn_gate_inp.weight"), {E, X}, GgmlType::F32);
        add(v, blk(i, "ffn_gate_exps.weight"), {E, FF, X});
        add(v, blk(i, "ffn_up_exps.weight"), {E, FF, X});
        add(v, blk(i, "ffn_down_exps.weight"), {FF, E, X});
    }
    add(v, "output_norm.weight", {E});
    add(v, "output.weight", {E, V});
    m.desc = {nullptr, E, FF, L, H, KV, X, HD, HD};
    return m;
}

Model make_deepseek2_lite() {  // DeepSeek-V2-Lite-like: MLA (attn_kv_b), shared experts, odd ffn sizes
    Model m;
    m.label = "deepseek2";
    const int L = 27, E = 2048, H = 16, X = 64, FF = 10944, EFF = 1408, SFF = 2816, V = 102400;
    m.facts = {"deepseek2", L, H, H, X};
    auto& v = m.tensors;
    add(v, "token_embd.weight", {E, V});
    for (int i = 0; i < L; ++i) {
        add(v, blk(i, "attn_norm.weight"), {E});
        add(v, blk(i, "attn_q.weight"), {E, H * 192});
        add(v, blk(i, "attn_kv_a_mqa.weight"), {E, 576});
        add(v, blk(i, "attn_kv_a_norm.weight"), {512});
        add(v, blk(i, "attn_kv_b.weight"), {512, H * 256});
        add(v, blk(i, "attn_output.weight"), {H * 128, E});
        add(v, blk(i, "ffn_norm.weight"), {E});
        if (i == 0) {
            add(v, blk(i, "ffn_gate.weight"), {E, FF});
            add(v, blk(i, "ffn_up.weight"), {E, FF});
            add(v, blk(i, "ffn_down.weight"), {FF, E});
        } else {
            add(v, blk(i, "ffn_gate_inp.weight"), {E, X}, GgmlType::F32);
            add(v, blk(i, "ffn_gate_exps.weight"), {E, EFF, X});
            add(v, blk(i, "ffn_up_exps.weight"), {E, EFF, X});
            add(v, blk(i, "ffn_down_exps.weight"), {EFF, E, X});
            add(v, blk(i, "ffn_gate_shexp.weight"), {E, SFF});
            add(v, blk(i, "ffn_up_shexp.weight"), {E, SFF});
            add(v, blk(i, "ffn_down_shexp.weight"), {SFF, E});
        }
    }
    add(v, "output_norm.weight", {E});
    add(v, "output.weight", {E, V});
    m.desc = {nullptr, E, FF, L, H, H, X, 192, 128};
    return m;
}

Model make_phi3() {  // Phi-3-mini-like: fused attn_qkv and gate_up, no GQA, untied
    Model m;
    m.label = "phi3";
    const int L = 32, E = 3072, FF = 8192, V = 32064;
    m.facts = {"phi3", L, 32, 32, 0};
    auto& v = m.tensors;
    add(v, "token_embd.weight", {E, V});
    for (int i = 0; i < L; ++i) {
        add(v, blk(i, "attn_norm.weight"), {E});
        add(v, blk(i, "attn_qkv.weight"), {E, 3 * E});
        add(v, blk(i, "attn_output.weight"), {E, E});
        add(v, blk(i, "ffn_norm.weight"), {E});
        add(v, blk(i, "ffn_up.weight"), {E, 2 * FF});
        add(v, blk(i, "ffn_down.weight"), {FF, E});
    }
    add(v, "output_norm.weight", {E});
    add(v, "output.weight", {E, V});
    m.desc = {nullptr, E, FF, L, 32, 32, 0, 96, 96};
    return m;
}

Model make_falcon() {  // Falcon-7B-like: n_embd 4544 (not a multiple of 256), MQA, biases
    Model m;
    m.label = "falcon";
    const int L = 32, E = 4544, FF = 18176, V = 65024;
    m.facts = {"falcon", L, 71, 1, 0};
    auto& v = m.tensors;
    add(v, "token_embd.weight", {E, V});
    for (int i = 0; i < L; ++i) {
        add(v, blk(i, "attn_norm.weight"), {E});
        add(v, blk(i, "attn_norm.bias"), {E});
        add(v, blk(i, "attn_qkv.weight"), {E, E + 128});
        add(v, blk(i, "attn_output.weight"), {E, E});
        add(v, blk(i, "ffn_up.weight"), {E, FF});
        add(v, blk(i, "ffn_down.weight"), {FF, E});
    }
    add(v, "output_norm.weight", {E});
    add(v, "output_norm.bias", {E});
    add(v, "output.weight", {E, V});
    m.desc = {nullptr, E, FF, L, 71, 1, 0, 64, 64};
    return m;
}

Model make_gemma3n_like() {  // tied, per_layer_token_embd (a TOKEN_EMBD too), altup/laurel tensors kept
    Model m;
    m.label = "gemma3n-like";
    const int L = 30, E = 2048, FF = 8192, V = 262144, PL = 256;
    m.facts = {"gemma3n", L, 8, 2, 0};
    auto& v = m.tensors;
    add(v, "token_embd.weight", {E, V});
    add(v, "per_layer_token_embd.weight", {PL * L, V});
    add(v, "per_layer_model_proj.weight", {E, PL * L});
    add(v, "altup_proj.weight", {E, E, 3});
    for (int i = 0; i < L; ++i) {
        add(v, blk(i, "attn_norm.weight"), {E});
        add(v, blk(i, "attn_q.weight"), {E, 2048});
        add(v, blk(i, "attn_k.weight"), {E, 512});
        add(v, blk(i, "attn_v.weight"), {E, 512});
        add(v, blk(i, "attn_output.weight"), {2048, E});
        add(v, blk(i, "altup_correct_coef.weight"), {4, 4});
        add(v, blk(i, "laurel_l.weight"), {E, 64});
        add(v, blk(i, "inp_gate.weight"), {E, PL});
        add(v, blk(i, "proj.weight"), {PL, E});
        add(v, blk(i, "ffn_gate.weight"), {E, FF});
        add(v, blk(i, "ffn_up.weight"), {E, FF});
        add(v, blk(i, "ffn_down.weight"), {FF, E});
    }
    add(v, "output_norm.weight", {E});
    m.desc = {nullptr, E, FF, L, 8, 2, 0, 256, 256};
    return m;
}

std::vector<Model> models() {
    std::vector<Model> ms;
    ms.push_back(make_llama("llama3-8b", {"llama", 32, 4096, 14336, 32, 8, 128256, false, 0, true}));
    ms.push_back(make_llama("llama3-8b-tied", {"llama", 32, 4096, 14336, 32, 8, 128256, true}));
    ms.push_back(make_llama("llama-16l-ff320", {"llama", 16, 256, 320, 4, 1, 32, false}));
    ms.push_back(make_llama("llama-16l-ff320-tied", {"llama", 16, 256, 320, 4, 1, 32, true}));
    ms.push_back(make_llama("llama-odd-80", {"llama", 12, 80, 96, 4, 4, 64, false}));  // ne[0] % 32 != 0 -> F16
    ms.push_back(make_llama("llama-70b", {"llama", 80, 8192, 28672, 64, 8, 128256, false}));
    ms.push_back(make_llama("llama-28l-mha", {"llama", 28, 3072, 8192, 24, 24, 128256, true}));
    ms.push_back(make_llama("mixtral", {"llama", 32, 4096, 14336, 32, 8, 32000, false, 8}));
    ms.push_back(make_llama("mixtral-16e-odd", {"llama", 8, 512, 352, 8, 2, 32000, true, 16}));
    ms.push_back(make_qwen3moe());
    ms.push_back(make_deepseek2_lite());
    ms.push_back(make_phi3());
    ms.push_back(make_falcon());
    ms.push_back(make_gemma3n_like());
    for (auto& m : ms) m.desc.architecture = m.facts.arch.c_str();
    return ms;
}

std::vector<std::pair<std::string, Overrides>> override_sets() {
    std::vector<std::pair<std::string, Overrides>> v;
    v.emplace_back("none", Overrides{});
    Overrides o;
    o.pure = true;
    v.emplace_back("pure", o);
    o = {};
    o.leave_output = true;
    v.emplace_back("leave-output", o);
    o = {};
    o.output_type = GgmlType::Q8_0;
    v.emplace_back("output-q8_0", o);
    o = {};
    o.token_embd_type = GgmlType::Q6_K;
    v.emplace_back("token-embd-q6_K", o);
    o = {};
    o.output_type = GgmlType::Q4_K;  // not a multiple for some models: no fallback for overrides
    o.token_embd_type = GgmlType::Q5_K;
    v.emplace_back("output-q4_K-embd-q5_K", o);
    o = {};
    o.tensor_types = {{"attn_v", GgmlType::Q8_0},
                      {"blk\\.[12]\\.ffn_down", GgmlType::Q4_0},
                      {"ffn", GgmlType::Q5_K},
                      {"^output\\.weight$", GgmlType::Q4_K},
                      {"token_embd", GgmlType::IQ4_XS}};
    v.emplace_back("tensor-type", o);
    o = {};
    o.tensor_types = {{"blk\\.(0|3|7)\\.attn_(v|qkv|kv_b)", GgmlType::Q8_0}, {"blk\\.1\\.ffn_down", GgmlType::BF16}};
    v.emplace_back("tensor-type-counters", o);
    o = {};
    o.token_embd_type = GgmlType::Q6_K;
    o.tensor_types = {{"per_layer_token_embd", GgmlType::Q4_0}, {"blk\\.2\\.", GgmlType::TQ2_0}};
    v.emplace_back("token-embd-and-tensor-type", o);
    return v;
}

std::string type_str(int id) {
    const auto* tr = sf::quant::type_traits(static_cast<std::uint32_t>(id));
    return tr ? std::string(tr->name) : "id" + std::to_string(id);
}

TEST(FTypeOracle, EveryFtypeModelAndOverrideMatchesLibllama) {
    auto& oracle = Oracle::get();
    if (!oracle.ok()) GTEST_FAIL() << oracle.why();  // the npm peers are installed: never a skip
    const auto ms = models();
    const auto ovs = override_sets();
    std::size_t n_compared = 0;
    int n_reported = 0;
    for (const auto& m : ms) {
        for (const auto& row : sf::quant::ftype_table()) {
            for (const auto& [ov_label, ov0] : ovs) {
                Overrides ov = ov0;
                sf::quant::apply_preset(row, ov);
                const auto ours = sf::quant::choose_types(m.tensors, m.facts, row.ftype, ov, row.only_copy);
                const auto ref = oracle.compute(m.desc, m.tensors, row.ftype, ov, row.only_copy);
                ASSERT_EQ(ours.size(), ref.size());
                for (std::size_t i = 0; i < ours.size(); ++i) {
                    ++n_compared;
                    if (static_cast<int>(ours[i].type) != ref[i] && n_reported < 40) {
                        ++n_reported;
                        ADD_FAILURE() << m.label << " " << row.name << " [" << ov_label << "] "
                                      << m.tensors[i].name << ": ours " << type_str(static_cast<int>(ours[i].type))
                                      << " (" << ours[i].rule << "), libllama " << type_str(ref[i]);
                    }
                }
            }
        }
    }
    EXPECT_GT(n_compared, 100000u);
}

// The oracle itself, against observed llama-quantize --dry-run decisions, so that a
// silently broken hook cannot make the comparison above vacuous.
TEST(FTypeOracle, OracleAgreesWithAppendixC) {
    auto& oracle = Oracle::get();
    if (!oracle.ok()) GTEST_FAIL() << oracle.why();  // the npm peers are installed: never a skip
    Model m = make_llama("appendix-c", {"llama", 16, 256, 320, 4, 1, 32, false});
    m.desc.architecture = m.facts.arch.c_str();
    const auto ref = oracle.compute(m.desc, m.tensors, FType::Q4_K_M, Overrides{}, false);
    const std::string attn_v = "q6_K q6_K q4_K q4_K q6_K q4_K q4_K q6_K q4_K q4_K q6_K q4_K q4_K q6_K q6_K q6_K";
    const std::string ffn_down = "q8_0 q8_0 q5_0 q5_0 q8_0 q5_0 q5_0 q8_0 q5_0 q5_0 q8_0 q5_0 q5_0 q8_0 q8_0 q8_0";
    std::string got_v, got_d;
    for (std::size_t i = 0; i < m.tensors.size(); ++i) {
        const auto& n = m.tensors[i].name;
        if (n.find("attn_v") != std::string::npos) got_v += (got_v.empty() ? "" : " ") + type_str(ref[i]);
        if (n.find("ffn_down") != std::string::npos) got_d += (got_d.empty() ? "" : " ") + type_str(ref[i]);
        if (n == "output.weight") {
            EXPECT_EQ(type_str(ref[i]), "q6_K");
        }
        if (n == "token_embd.weight") {
            EXPECT_EQ(type_str(ref[i]), "q4_K");
        }
        if (n.find("_norm") != std::string::npos) {
            EXPECT_EQ(type_str(ref[i]), "f32");
        }
        if (n.find("attn_q.") != std::string::npos) {
            EXPECT_EQ(type_str(ref[i]), "q4_K");
        }
    }
    EXPECT_EQ(got_v, attn_v);
    EXPECT_EQ(got_d, ffn_down);
}

// ---- a minimal GGUF v3 writer (header, KVs, tensor infos; data left as a hole: --dry-run reads none of it)
class GgufWriter {
public:
    void kv_u32(const std::string& k, std::uint32_t v) { key(k, 4); put(v); ++n_kv_; }
    void kv_f32(const std::string& k, float v) { key(k, 6); put(v); ++n_kv_; }
    void kv_str(const std::string& k, const std::string& v) { key(k, 8); str(v); ++n_kv_; }
    void tensor(const QuantTensor& t) {
        std::ostringstream& o = infos_;
        const std::uint64_t n = t.name.size();
        o.write(reinterpret_cast<const char*>(&n), 8);
        o.write(t.name.data(), static_cast<std::streamsize>(n));
        const std::uint32_t nd = static_cast<std::uint32_t>(t.ne.size());
        o.write(reinterpret_cast<const char*>(&nd), 4);
        std::uint64_t numel = 1;
        for (auto d : t.ne) {
            const std::uint64_t u = static_cast<std::uint64_t>(d);
            o.write(reinterpret_cast<const char*>(&u), 8);
            numel *= u;
        }
        const std::uint32_t ty = static_cast<std::uint32_t>(t.type);
        o.write(reinterpret_cast<const char*>(&ty), 4);
        o.write(reinterpret_cast<const char*>(&data_size_), 8);
        data_size_ += (numel * (t.type == GgmlType::F32 ? 4 : 2) + 31) / 32 * 32;
        ++n_tensors_;
    }
    bool write(const std::string& path) const {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write("GGUF", 4);
        const std::uint32_t version = 3;
        f.write(reinterpret_cast<const char*>(&version), 4);
        f.write(reinterpret_cast<const char*>(&n_tensors_), 8);
        f.write(reinterpret_cast<const char*>(&n_kv_), 8);
        const std::string kvs = kvs_.str(), infos = infos_.str();
        f.write(kvs.data(), static_cast<std::streamsize>(kvs.size()));
        f.write(infos.data(), static_cast<std::streamsize>(infos.size()));
        const auto header = static_cast<std::uint64_t>(f.tellp());
        const std::uint64_t data_start = (header + 31) / 32 * 32;
        f.seekp(static_cast<std::streamoff>(data_start + data_size_ - 1));
        f.put('\0');  // sparse: the tensor data is all zeros
        return static_cast<bool>(f);
    }

private:
    template <class T>
    void put(T v) { kvs_.write(reinterpret_cast<const char*>(&v), sizeof v); }
    void str(const std::string& s) {
        put(static_cast<std::uint64_t>(s.size()));
        kvs_.write(s.data(), static_cast<std::streamsize>(s.size()));
    }
    void key(const std::string& k, std::uint32_t type) {
        str(k);
        put(type);
    }
    std::ostringstream kvs_, infos_;
    std::uint64_t n_kv_ = 0, n_tensors_ = 0, data_size_ = 0;
};

// The real driver (loader, weights_map order, hparams from the file) on files whose tensors are in a scrambled
// order: llama-quantize's decisions must equal ours for the same tensor list in file order.
TEST(FTypeOracle, RealDryRunOnScrambledGguf) {
    auto& oracle = Oracle::get();
    if (!oracle.ok()) GTEST_FAIL() << oracle.why();  // the npm peers are installed: never a skip
    struct Case { const char* label; LlamaShape s; };
    const Case cases[] = {
        {"dense-16l-ff320", {"llama", 16, 256, 320, 4, 1, 32, false}},
        {"dense-12l-tied", {"llama", 12, 256, 512, 4, 4, 64, true}},
        {"moe-8e", {"llama", 10, 256, 320, 4, 2, 32, false, 8}},
        {"llama-80l", {"llama", 80, 256, 512, 4, 1, 32, false}},   // LLM_TYPE_70B
        {"qwen2-80l", {"qwen2", 80, 256, 512, 4, 4, 32, true}},    // LLM_TYPE_70B without GQA
        {"qwen2-64l", {"qwen2", 64, 256, 512, 4, 1, 32, true}},
    };
    for (const auto& c : cases) {
        Model m = make_llama(c.label, c.s);
        // scramble: odd layers first, then even layers, then the globals, reversed within each
        std::vector<QuantTensor> file;
        for (int parity : {1, 0})
            for (auto it = m.tensors.rbegin(); it != m.tensors.rend(); ++it) {
                int layer = -1;
                if (std::sscanf(it->name.c_str(), "blk.%d.", &layer) == 1 && layer % 2 == parity) file.push_back(*it);
            }
        for (const auto& t : m.tensors)
            if (t.name.rfind("blk.", 0) != 0) file.push_back(t);
        ASSERT_EQ(file.size(), m.tensors.size());
        GgufWriter w;
        const std::string a = c.s.arch;
        w.kv_str("general.architecture", a);
        w.kv_u32(a + ".context_length", 2048);
        w.kv_u32(a + ".embedding_length", static_cast<std::uint32_t>(c.s.n_embd));
        w.kv_u32(a + ".block_count", static_cast<std::uint32_t>(c.s.n_layer));
        w.kv_u32(a + ".feed_forward_length", static_cast<std::uint32_t>(c.s.n_ff));
        w.kv_u32(a + ".attention.head_count", static_cast<std::uint32_t>(c.s.n_head));
        w.kv_u32(a + ".attention.head_count_kv", static_cast<std::uint32_t>(c.s.n_head_kv));
        w.kv_f32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
        w.kv_u32(a + ".vocab_size", static_cast<std::uint32_t>(c.s.n_vocab));
        if (c.s.n_expert > 0) {
            w.kv_u32(a + ".expert_count", static_cast<std::uint32_t>(c.s.n_expert));
            w.kv_u32(a + ".expert_used_count", 2);
        }
        for (const auto& t : file) w.tensor(t);
        const std::string path = ::testing::TempDir() + "sf_ftype_" + c.label + ".gguf";
        ASSERT_TRUE(w.write(path));
        for (FType f : {FType::Q4_K_M, FType::Q3_K_M, FType::Q3_K_S, FType::Q2_K, FType::Q4_K_S, FType::IQ3_XS,
                        FType::IQ2_XS, FType::Q8_0, FType::MXFP4_MOE, FType::F16}) {
            const auto ref = oracle.dry_run(path, f);
            ASSERT_EQ(ref.size(), file.size()) << c.label << " " << sf::quant::ftype_info(f).name;
            const auto ours = sf::quant::choose_types(file, m.facts, f, {});
            for (std::size_t i = 0; i < file.size(); ++i)
                EXPECT_EQ(std::string(sf::quant::traits(ours[i].type).name), ref.at(file[i].name))
                    << c.label << " " << sf::quant::ftype_info(f).name << " " << file[i].name << ": " << ours[i].rule;
        }
        std::remove(path.c_str());
    }
}

// tensor_allows_quantization on odd names, against the library.
TEST(FTypeOracle, UnusualNamesAndShapes) {
    auto& oracle = Oracle::get();
    if (!oracle.ok()) GTEST_FAIL() << oracle.why();  // the npm peers are installed: never a skip
    Model m = make_llama("llama-small", {"llama", 4, 256, 512, 4, 2, 64, false});
    auto& v = m.tensors;
    add(v, "blk.1.ffn_gate_inp.weight", {256, 4});
    add(v, "blk.1.ffn_gate_inp_shexp.weight", {256, 1});
    add(v, "blk.2.ssm_conv1d.weight", {4, 256});
    add(v, "blk.2.time_mix_w1.weight", {256, 64});
    add(v, "position_embd.weight", {256, 64});
    add(v, "token_types.weight", {256, 2});
    add(v, "v.blk.0.position_embd.weight", {256, 64});
    add(v, "blk.3.altup_proj.weight", {256, 256});
    add(v, "blk.3.attn_q.bias", {256, 2});
    add(v, "blk.3.xweight", {256, 256});
    add(v, "abcde", {256, 256});                        // shorter than "weight": llama's size_t quirk
    add(v, "blk.0.attn_kv_b.weight", {512, 256});       // attn_v-like (counted!)
    add(v, "blk.0.ffn_down_shexp.weight", {256, 256});  // ffn_down-like (counted!)
    add(v, "per_layer_token_embd.weight", {256, 64});
    add(v, "blk.2.attn_output.weight", {256, 256, 1});  // 3-D with ne[2]==1 is 2-D
    add(v, "blk.2.ffn_up_exps.weight", {256, 512, 2}, GgmlType::BF16);
    m.desc.architecture = m.facts.arch.c_str();
    for (FType f : {FType::Q4_K_M, FType::Q2_K, FType::IQ2_M, FType::MXFP4_MOE, FType::IQ3_XS, FType::Q8_0}) {
        for (const auto& [ov_label, ov] : override_sets()) {
            const auto ours = sf::quant::choose_types(m.tensors, m.facts, f, ov);
            const auto ref = oracle.compute(m.desc, m.tensors, f, ov, false);
            for (std::size_t i = 0; i < ours.size(); ++i)
                EXPECT_EQ(static_cast<int>(ours[i].type), ref[i])
                    << sf::quant::ftype_info(f).name << " [" << ov_label << "] " << m.tensors[i].name << ": ours "
                    << ours[i].rule << ", libllama " << type_str(ref[i]);
        }
    }
}

}  // namespace
