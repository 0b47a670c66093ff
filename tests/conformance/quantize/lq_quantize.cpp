// lq_quantize IN OUT FTYPE [--pure] [--leave-output-tensor] [--output-tensor-type T] [--token-embedding-type T]
//             [--imatrix FILE] [--threads N] [--lib DIR] [--time]
// Runs the real llama-quantize engine (llama_model_quantize of the libllama that node-llama-cpp ships, release
// de3ff81) on a GGUF file: the oracle of tests/conformance/quantize. FTYPE is a llama-quantize ftype name
// (Q4_K_M, q8_0, F32, ...) or its decimal id, or, when OUT is a directory (which receives <FTYPE>.gguf), a comma-separated
// list of them. The library directory is --lib, else $SHARDFORGE_LLAMA_LIB_DIR,
// else <source>/tests/conformance/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64 (SF_LQ_DEFAULT_LIB_DIR).
// Exit codes: 0 ok, 1 llama_model_quantize failed, 2 usage, 77 library not loadable (run.sh: a failure).
// --time: prints "lq_quantize: FTYPE_ID WALL_S CPU_S" per ftype: wall and process CPU time (all threads) of the
// llama_model_quantize call alone (tests/bench/compare.sh).
// Deliberately independent of shardforge: the ftype table below is copied from llama.h (enum llama_ftype).
// --imatrix FILE: read by llama.cpp's own loader (common_imatrix_load of the shipped libllama-common.so, GGUF or
// legacy .dat), then what tools/quantize/quantize.cpp does with it: sums / counts per expert (GGUF) or / ncall
// (legacy), the entries handed over as llama_model_imatrix_data, and the quantize.imatrix.* KV overrides.
#include <dlfcn.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

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

// struct llama_model_imatrix_data (llama.h): an array of these, terminated by name == nullptr.
struct LlamaImatrixData {
    const char* name;
    const float* data;
    std::size_t size;
};

// struct llama_model_kv_override (llama.h); tag: 0 INT, 1 FLOAT, 2 BOOL, 3 STR. A zero key[0] ends the list.
struct LlamaKvOverride {
    int tag;
    char key[128];
    union {
        std::int64_t val_i64;
        double val_f64;
        bool val_bool;
        char val_str[128];
    };
};
static_assert(sizeof(LlamaKvOverride) == 264, "llama_model_kv_override layout");

// common/imatrix-loader.h (struct common_imatrix): the loader's result, same libstdc++ as the library.
struct CommonImatrixEntry {
    std::vector<float> sums;
    std::vector<std::int64_t> counts;
};
struct CommonImatrix {
    std::map<std::string, CommonImatrixEntry> entries;
    std::vector<std::string> datasets;
    std::int32_t chunk_count = 0;
    std::int32_t chunk_size = 0;
    bool is_legacy = false;
    bool has_metadata = false;
};
// bool common_imatrix_load(const std::string & fname, common_imatrix & imatrix)
constexpr const char* common_imatrix_load_symbol =
    "_Z19common_imatrix_loadRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEER14common_imatrix";

LlamaKvOverride kv_str(const char* key, const std::string& v) {
    LlamaKvOverride o{};
    o.tag = 3;
    std::strncpy(o.key, key, sizeof o.key - 1);
    std::strncpy(o.val_str, v.c_str(), 127);  // quantize.cpp keeps 127 bytes
    o.val_str[127] = '\0';
    return o;
}
LlamaKvOverride kv_int(const char* key, std::int64_t v) {
    LlamaKvOverride o{};
    o.tag = 0;
    std::strncpy(o.key, key, sizeof o.key - 1);
    o.val_i64 = v;
    return o;
}

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
    std::string in, out, ft, lib, imatrix_file;
    bool pure = false, leave_output = false, time_it = false;
    int threads = 1, output_type = -1, embd_type = -1;
    int pos = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--pure") {
            pure = true;
        } else if (a == "--time") {
            time_it = true;
        } else if (a == "--leave-output-tensor") {
            leave_output = true;
        } else if (a == "--output-tensor-type" && i + 1 < argc) {
            if ((output_type = parse_ggml_type(argv[++i])) < 0) pos = 99;
        } else if (a == "--token-embedding-type" && i + 1 < argc) {
            if ((embd_type = parse_ggml_type(argv[++i])) < 0) pos = 99;
        } else if (a == "--imatrix" && i + 1 < argc) {
            imatrix_file = argv[++i];
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
                             "[--token-embedding-type T] [--imatrix FILE] [--threads N] [--lib DIR] [--time]\n");
        return 2;
    }
    // OUT may be a directory: the result is OUT/<FTYPE>.gguf, and FTYPE may be a comma-separated list, all done in
    // one process (ggml builds its IQ grids once per process: seconds each for IQ1_S/IQ1_M).
    std::vector<std::pair<int, std::string>> jobs;  // ftype id, output path
    const bool to_dir = std::filesystem::is_directory(out);
    if (!to_dir && ft.find(',') != std::string::npos) {
        std::fprintf(stderr, "lq_quantize: several ftypes need OUT to be a directory\n");
        return 2;
    }
    for (std::size_t b = 0; b <= ft.size();) {
        std::size_t e = ft.find(',', b);
        if (e == std::string::npos) e = ft.size();
        const std::string one = ft.substr(b, e - b);
        const int id = parse_ftype(one);
        if (id < 0) {
            std::fprintf(stderr, "lq_quantize: unknown ftype '%s'\n", one.c_str());
            return 2;
        }
        jobs.emplace_back(id, to_dir ? out + "/" + one + ".gguf" : out);
        b = e + 1;
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
    p.nthread = threads;
    p.pure = pure;
    p.quantize_output_tensor = !leave_output;
    if (output_type >= 0) p.output_tensor_type = output_type;
    if (embd_type >= 0) p.token_embedding_type = embd_type;

    // The importance matrix, as llama-quantize hands it over (tools/quantize/quantize.cpp load_imatrix and main).
    std::unordered_map<std::string, std::vector<float>> imatrix;
    std::vector<LlamaImatrixData> i_data;
    std::vector<LlamaKvOverride> kv_overrides;
    if (!imatrix_file.empty()) {
#ifdef _LIBCPP_VERSION
        std::fprintf(stderr, "lq_quantize: --imatrix passes std::string/std::map to libllama-common (libstdc++); "
                             "this build uses libc++\n");
        return 77;
#endif
        void* common = dlopen((lib + "/libllama-common.so").c_str(), RTLD_NOW | RTLD_LOCAL);
        auto load = common ? reinterpret_cast<bool (*)(const std::string&, CommonImatrix&)>(
                                 dlsym(common, common_imatrix_load_symbol))
                           : nullptr;
        if (!load) {
            std::fprintf(stderr, "lq_quantize: cannot load common_imatrix_load from %s/libllama-common.so\n",
                         lib.c_str());
            return 77;
        }
        CommonImatrix loaded;
        if (!load(imatrix_file, loaded) || (!loaded.is_legacy && !loaded.has_metadata)) {
            std::fputs(g_log.c_str(), stderr);
            std::fprintf(stderr, "lq_quantize: cannot load the imatrix %s\n", imatrix_file.c_str());
            return 1;
        }
        for (const auto& [name, entry] : loaded.entries) {
            std::vector<float>& e = imatrix[name];
            e.resize(entry.sums.size());
            if (!loaded.is_legacy) {  // GGUF: in_sum2 / count per expert; an expert never hit gets 1
                const std::size_t n_counts = entry.counts.size(), ne0 = entry.sums.size() / n_counts;
                for (std::size_t j = 0; j < n_counts; ++j) {
                    const float count = static_cast<float>(entry.counts[j]);
                    for (std::size_t i = 0; i < ne0; ++i)
                        e[j * ne0 + i] = count > 0.0f ? entry.sums[j * ne0 + i] / count : 1.0f;
                }
            } else {  // legacy: sums hold mean * ncall
                const std::int64_t ncall = entry.counts.empty() ? 0 : entry.counts[0];
                for (std::size_t i = 0; i < entry.sums.size(); ++i)
                    e[i] = ncall > 0 ? entry.sums[i] / static_cast<float>(ncall) : entry.sums[i];
            }
        }
        if (!imatrix.empty()) {
            for (const auto& [name, v] : imatrix) i_data.push_back({name.c_str(), v.data(), v.size()});
            i_data.push_back({nullptr, nullptr, 0});
            p.imatrix = i_data.data();
            kv_overrides.push_back(kv_str("quantize.imatrix.file", imatrix_file));
            if (!loaded.datasets.empty()) kv_overrides.push_back(kv_str("quantize.imatrix.dataset", loaded.datasets[0]));
            kv_overrides.push_back(kv_int("quantize.imatrix.entries_count", static_cast<std::int64_t>(imatrix.size())));
            if (loaded.chunk_count > 0) kv_overrides.push_back(kv_int("quantize.imatrix.chunks_count", loaded.chunk_count));
            kv_overrides.push_back(LlamaKvOverride{});
            p.kv_overrides = kv_overrides.data();
        }
    }
    for (const auto& [ftype, path] : jobs) {
        p.ftype = ftype;
        g_log.clear();
        const auto t0 = std::chrono::steady_clock::now();
        const std::clock_t c0 = std::clock();
        const std::uint32_t rc = quantize(in.c_str(), path.c_str(), &p);
        if (time_it && rc == 0)
            std::printf("lq_quantize: %d %.6f %.6f\n", ftype,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                        static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC);
        if (rc != 0 || std::getenv("SF_LQ_VERBOSE")) std::fputs(g_log.c_str(), stderr);
        if (rc != 0) {
            std::fprintf(stderr, "lq_quantize: llama_model_quantize(%s -> %s, ftype %d) failed (%u)\n", in.c_str(),
                         path.c_str(), ftype, rc);
            return 1;
        }
    }
    return 0;
}
