// lq_quantize IN OUT FTYPE [--pure] [--leave-output-tensor] [--output-tensor-type T] [--token-embedding-type T]
//             [--threads N] [--lib DIR]
// Runs the real llama-quantize engine (llama_model_quantize of the libllama that node-llama-cpp ships, release
// de3ff81) on a GGUF file: the oracle of tests/conformance/quantize. FTYPE is a llama-quantize ftype name
// (Q4_K_M, q8_0, F32, ...) or its decimal id. The library directory is --lib, else $SHARDFORGE_LLAMA_LIB_DIR,
// else <source>/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64 (SF_LQ_DEFAULT_LIB_DIR).
// Exit codes: 0 ok, 1 llama_model_quantize failed, 2 usage, 77 library not loadable (caller skips).
// Deliberately independent of shardforge: the ftype table below is copied from llama.h (enum llama_ftype).
#include <dlfcn.h>

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// Mirror of llama_model_quantize_params of include/llama.h (de3ff81).
struct LlamaQuantizeParams {
    std::int32_t nthread;
    int ftype, output_tensor_type, token_embedding_type;
    bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
    const void* imatrix;
    const void* kv_overrides;
    const void* tt_overrides;
    const std::int32_t* prune_layers;
    std::size_t max_buf_size;
};
static_assert(sizeof(LlamaQuantizeParams) == 64, "llama_model_quantize_params layout");

struct FtypeName {
    const char* name;
    int id;
};
// enum llama_ftype (llama.h)
constexpr FtypeName ftypes[] = {
    {"F32", 0},      {"F16", 1},      {"Q4_0", 2},     {"Q4_1", 3},      {"Q8_0", 7},     {"Q5_0", 8},
    {"Q5_1", 9},     {"Q2_K", 10},    {"Q3_K_S", 11},  {"Q3_K_M", 12},   {"Q3_K_L", 13},  {"Q4_K_S", 14},
    {"Q4_K_M", 15},  {"Q5_K_S", 16},  {"Q5_K_M", 17},  {"Q6_K", 18},     {"IQ2_XXS", 19}, {"IQ2_XS", 20},
    {"Q2_K_S", 21},  {"IQ3_XS", 22},  {"IQ3_XXS", 23}, {"IQ1_S", 24},    {"IQ4_NL", 25},  {"IQ3_S", 26},
    {"IQ3_M", 27},   {"IQ2_S", 28},   {"IQ2_M", 29},   {"IQ4_XS", 30},   {"IQ1_M", 31},   {"BF16", 32},
    {"TQ1_0", 36},   {"TQ2_0", 37},   {"MXFP4_MOE", 38},
};

// enum ggml_type (ggml.h), for --output-tensor-type / --token-embedding-type
constexpr FtypeName ggml_types[] = {
    {"F32", 0},     {"F16", 1},     {"Q4_0", 2},    {"Q4_1", 3},   {"Q5_0", 6},    {"Q5_1", 7},    {"Q8_0", 8},
    {"Q2_K", 10},   {"Q3_K", 11},   {"Q4_K", 12},   {"Q5_K", 13},  {"Q6_K", 14},   {"IQ2_XXS", 16}, {"IQ2_XS", 17},
    {"IQ3_XXS", 18}, {"IQ1_S", 19}, {"IQ4_NL", 20}, {"IQ3_S", 21}, {"IQ2_S", 22},  {"IQ4_XS", 23}, {"IQ1_M", 29},
    {"BF16", 30},   {"TQ1_0", 34},  {"TQ2_0", 35},  {"MXFP4", 39},
};

int parse_ggml_type(const std::string& s) {
    std::string up;
    for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& f : ggml_types)
        if (up == f.name) return f.id;
    return -1;
}

int parse_ftype(const std::string& s) {
    if (!s.empty() && std::isdigit(static_cast<unsigned char>(s[0]))) return std::atoi(s.c_str());
    std::string up;
    for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& f : ftypes)
        if (up == f.name) return f.id;
    return -1;
}

std::string g_log;
void log_cb(int, const char* text, void*) { g_log += text; }

}  // namespace

int main(int argc, char** argv) {
    std::string in, out, ft, lib;
    bool pure = false, leave_output = false;
    int threads = 1, output_type = -1, embd_type = -1;
    int pos = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--pure") {
            pure = true;
        } else if (a == "--leave-output-tensor") {
            leave_output = true;
        } else if (a == "--output-tensor-type" && i + 1 < argc) {
            if ((output_type = parse_ggml_type(argv[++i])) < 0) pos = 99;
        } else if (a == "--token-embedding-type" && i + 1 < argc) {
            if ((embd_type = parse_ggml_type(argv[++i])) < 0) pos = 99;
        } else if (a == "--threads" && i + 1 < argc) {
            threads = std::atoi(argv[++i]);
        } else if (a == "--lib" && i + 1 < argc) {
            lib = argv[++i];
        } else if (pos == 0) {
            in = a, ++pos;
        } else if (pos == 1) {
            out = a, ++pos;
        } else if (pos == 2) {
            ft = a, ++pos;
        } else {
            pos = 99;
        }
    }
    if (pos != 3) {
        std::fprintf(stderr, "usage: lq_quantize IN OUT FTYPE [--pure] [--leave-output-tensor] [--output-tensor-type T] "
                             "[--token-embedding-type T] [--threads N] [--lib DIR]\n");
        return 2;
    }
    const int ftype = parse_ftype(ft);
    if (ftype < 0) {
        std::fprintf(stderr, "lq_quantize: unknown ftype '%s'\n", ft.c_str());
        return 2;
    }
    if (lib.empty()) {
        if (const char* e = std::getenv("SHARDFORGE_LLAMA_LIB_DIR")) lib = e;
    }
#ifdef SF_LQ_DEFAULT_LIB_DIR
    if (lib.empty()) lib = SF_LQ_DEFAULT_LIB_DIR;
#endif
    // libllama's RUNPATH is $ORIGIN, so its libggml* dependencies resolve from its own directory.
    void* base = dlopen((lib + "/libggml-base.so").c_str(), RTLD_NOW | RTLD_GLOBAL);
    void* llama = base ? dlopen((lib + "/libllama.v0.5.0.so").c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (!llama) {
        const char* err = dlerror();
        std::fprintf(stderr, "lq_quantize: cannot load libllama from %s: %s\n", lib.c_str(), err ? err : "?");
        return 77;
    }
    auto log_set = reinterpret_cast<void (*)(void (*)(int, const char*, void*), void*)>(dlsym(llama, "llama_log_set"));
    auto backend_init = reinterpret_cast<void (*)()>(dlsym(llama, "llama_backend_init"));
    auto defaults = reinterpret_cast<LlamaQuantizeParams (*)()>(dlsym(llama, "llama_model_quantize_default_params"));
    auto quantize = reinterpret_cast<std::uint32_t (*)(const char*, const char*, const LlamaQuantizeParams*)>(
        dlsym(llama, "llama_model_quantize"));
    if (!log_set || !backend_init || !defaults || !quantize) {
        std::fprintf(stderr, "lq_quantize: libllama in %s lacks the llama_model_quantize API\n", lib.c_str());
        return 77;
    }
    log_set(log_cb, nullptr);
    backend_init();
    LlamaQuantizeParams p = defaults();
    p.ftype = ftype;
    p.nthread = threads;
    p.pure = pure;
    p.quantize_output_tensor = !leave_output;
    if (output_type >= 0) p.output_tensor_type = output_type;
    if (embd_type >= 0) p.token_embedding_type = embd_type;
    const std::uint32_t rc = quantize(in.c_str(), out.c_str(), &p);
    if (rc != 0 || std::getenv("SF_LQ_VERBOSE")) std::fputs(g_log.c_str(), stderr);
    if (rc != 0) {
        std::fprintf(stderr, "lq_quantize: llama_model_quantize(%s -> %s, %s) failed (%u)\n", in.c_str(),
                     out.c_str(), ft.c_str(), rc);
        return 1;
    }
    return 0;
}
