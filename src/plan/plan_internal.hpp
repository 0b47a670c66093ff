// Shared between plan.cpp and plan_gguf.cpp: the table of tensors an output can draw from (base tensors with
// their LoRA merges, plus synthesized ones such as an untied lm_head), and the items built from them.
#pragma once
#include <shardforge/formats.hpp>
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace shardforge::plan::detail {

struct VTensor {
    std::string name;  // name as an HF tensor (what the outputs see)
    Source source;
};

// One read, many outputs: every output's emit of a tensor goes to the item that already reads it. A tensor read
// whole has one item (item_of); a GGUF tensor built from several sources or slices has one item for all GGUF
// outputs (item_by_key); when a GGUF tensor stacks experts whose own tensors already have items (safetensors,
// bnb), those items' emits move into the stacked item as windows of its rows (window_of), so each expert is read
// once.
struct Tables {
    std::vector<VTensor> tensors;
    std::map<std::string, std::size_t> index;
    std::vector<std::int64_t> item_of;  // per tensor: the item already reading it whole, or -1
    // per tensor: the item rows it fills when item_of is a stacked item; {0, -1}: its own item
    std::vector<std::pair<std::int64_t, std::int64_t>> window_of;
    std::map<std::string, std::size_t> item_by_key;  // items of several sources or slices, by what they read
    Item& item_for(std::size_t i, Plan& p);
    // Adds e to the item reading tensor i whole (as a window of a stacked item when it became one).
    void add_emit(std::size_t i, Emit e, Plan& p);
};

std::string read_text(const std::filesystem::path& p);
// Quantized bases (plan_quant.cpp): dequantization recipes on the quantized weights' sources, auxiliary tensors
// removed from `t` and `base_list`, --merge-into original applied. Call before LoRA resolution.
void resolve_quantized_inputs(const Options& opt, const formats::SafetensorsSet& base, const nlohmann::json& config,
                              Tables& t, std::vector<lora::BaseTensor>& base_list, Plan& p);
nlohmann::json read_json(const std::filesystem::path& p);
// model::validate_config on the base's config.json and logical tensor shapes, for every merged output format,
// before any output is planned; skipped when the config names no architecture.
void validate_base_config(const nlohmann::json& config, const std::filesystem::path& path,
                          const std::vector<lora::BaseTensor>& base);
// Row blocks, unit costs and memory sizing (schedule.cpp); throws Usage when the memory budget cannot be met.
void schedule(const Options& opt, Plan& p);
// One tensor of a Hugging Face safetensors checkpoint (what the shard layout needs to know of it).
struct HfEntry {
    std::string name;
    core::DType dtype;
    core::Shape shape;
    std::uint64_t bytes;
};
// Where one group of entries landed: its index in the groups passed, the plan file holding it, and each entry's
// data offset in that file.
struct HfPlaced {
    std::size_t group;
    std::uint32_t file;
    std::vector<std::uint64_t> offsets;
};
// Lays `groups` out as model-0000N-of-0000M.safetensors files (HF shard rule, max_shard_size; a group never spans
// two files) appended to p.files, plus model.safetensors.index.json when there is more than one file. Returns the
// groups in file order, then in order within each file.
std::vector<HfPlaced> add_hf_shards(const std::vector<std::vector<HfEntry>>& groups, std::uint64_t max_shard_size,
                                    Plan& p);
// Throws Unsupported when tensor `v` cannot be written as `dt` in an HF checkpoint: a LoRA merged into a non-float
// tensor, or merged/converted values as F8/F64.
void check_hf_output_dtype(const Options& opt, const Plan& p, const VTensor& v, core::DType dt);
// transformers' torch_dtype name of a 16/32-bit float dtype: bfloat16, float16, else float32.
const char* torch_dtype_name(core::DType d);
// config.json edits shared by the HF outputs: dtype/torch_dtype set to `dtype` (when given), and
// tie_word_embeddings=false (also in text_config) when `untie`.
void set_hf_config_dtype(nlohmann::json& cfg, std::optional<core::DType> dtype, bool untie);
// Tokenizer/generation files copied next to a merged HF model directory.
void add_copied_files(const Options& opt, Plan& p);
// GGUF file stem: --name or the base directory's name; Usage error unless it is a plain file name.
std::string output_stem(const Options& opt);
// A GGUF conversion of the table's tensors (all of them, or only the base's own when `base_only`: a synthesized
// untied lm_head is not in the base GGUF): config, llama.cpp arch name, tokenizer and the tensor mapping.
struct GgufBase {
    model::HfConfig cfg;
    std::string arch;
    model::TokenizerInfo tok;
    model::GgufConversion conv;
};
// mtp_only: the converter's --mtp selection (gguf-mtp outputs).
GgufBase plan_gguf_base(const Options& opt, const Tables& t, const Plan& p, bool base_only, bool mtp_only = false);
void add_gguf_output(const Options& opt, const OutputSpec& o, Tables& t, const nlohmann::json& config, Plan& p);
// A merged fine-tune's general.base_model.* keys (gguf-py's, from the base directory's name and config.json's
// _name_or_path), inserted after the general.* keys of kvs; none without adapters.
void add_base_model_kvs(const Options& opt, const model::HfConfig& cfg, std::vector<formats::GgufKV>& kvs);
// Adds e to the item that builds a GGUF tensor's f32 values: the one already reading its single whole source, or
// the same sources and slices for another GGUF output, else a new one (which takes over, as windows, the emits of
// items reading its whole sources: an expert's safetensors tensor and its stacked GGUF tensor from one read).
void add_map_emit(const model::GgufTensorMap& tm, Tables& t, Plan& p, Emit e);
// Drops the items left without emits (their tensors are written from stacked items).
void drop_empty_items(Plan& p);
// A vision-language checkpoint's mmproj-<name>-<TYPE>.gguf beside a gguf:TYPE output (model::plan_mmproj_conversion);
// `text` is that output's text conversion (its --outtype auto type).
void add_mmproj_output(const Options& opt, const OutputSpec& o, const model::GgufConversion& text, Tables& t,
                       Plan& p);
// --format gguf-lora[:f32|f16|bf16|q8_0]: the adapter(s) as a llama.cpp GGUF LoRA adapter (plan_gguf_lora.cpp).
void add_gguf_lora_output(const Options& opt, const OutputSpec& o, const std::vector<lora::Adapter>& adapters,
                          Tables& t, const nlohmann::json& config, Plan& p);

// --format bnb-nf4|bnb-fp4: the merged model as a bitsandbytes 4-bit checkpoint (plan_bnb.cpp).
void add_bnb_output(const Options& opt, const OutputSpec& o, Tables& t, const nlohmann::json& config, bool untie,
                    Plan& p);

}  // namespace shardforge::plan::detail
