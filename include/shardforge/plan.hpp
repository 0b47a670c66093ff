// shardforge plan: the export plan as data. A pure function of the input headers/configs and the options that
// lists every output file and every output tensor with its recipe (sources, LoRA merge, transforms, output type),
// byte size and byte offset. Rank 0 computes it, every rank receives it (JSON), each executes its share. It never
// depends on the rank count, so outputs are byte-identical for any number of ranks. It also drives --dry-run.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/encode.hpp>
#include <shardforge/lora.hpp>
#include <shardforge/model.hpp>
#include <shardforge/quant.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shardforge::plan {

// GgufMtp: "gguf-mtp:TYPE", the converter's --mtp output (the MTP layers as a speculative draft, glm4moe),
// written as mtp-<name>.<TYPE>.gguf.
enum class Format { Safetensors, Gguf, GgufLora, Bnb4, GgufMtp };

// One requested output: "safetensors", "gguf:q8_0", "gguf:q4_k_m", "gguf:bf16", "gguf:auto".
struct OutputSpec {
    Format format = Format::Safetensors;
    std::string type;  // gguf: lower-case type or ftype name; bnb4: "nf4" | "fp4"; empty for safetensors
};
[[nodiscard]] std::vector<OutputSpec> parse_formats(std::string_view csv);  // throws Usage

struct Options {
    std::filesystem::path base;
    std::vector<std::pair<std::filesystem::path, float>> adapters;  // applied in order, each with its weight
    std::filesystem::path out;
    std::vector<OutputSpec> outputs{OutputSpec{}};
    std::optional<core::DType> dtype;          // safetensors output dtype; default: the base's
    std::uint64_t max_shard_size = 5'000'000'000ULL;
    std::uint64_t split_max_size = 48'000'000'000ULL;  // GGUF; decimal like gguf-split
    std::uint32_t split_max_tensors = 0;                // 0 = unlimited
    std::string save_method = "merged";        // "merged" | "lora"
    std::string name;                          // GGUF file stem / general.name; default: base dir name
    bool overwrite = false;
    quant::Overrides quant_overrides;
    bool bnb_double_quant = false;             // bnb-nf4/bnb-fp4: quantize the absmax too (--double-quant)
    std::string merge_into = "dequantized";    // quantized bases: "dequantized" | "original" (--original-base)
    std::filesystem::path original_base;       // 16-bit checkpoint the quantized tensors are taken from
    std::filesystem::path imatrix;             // llama.cpp imatrix file (GGUF or legacy .dat) for gguf:<ftype>          // llama-quantize's --output-tensor-type, --tensor-type, --pure, ...
    // Scheduling and memory (schedule.cpp): row blocks are sized so that `threads` workers (plus the gather window
    // when `gather`) fit in max_memory_per_rank; 0 = no budget (blocks of about block_target_bytes of f32).
    std::uint64_t max_memory_per_rank = 0;
    std::uint64_t block_target_bytes = 0;      // 0: default (64 MiB of f32 per block)
    int threads = 1;                           // worker threads per rank the budget must cover
    bool gather = false;                       // --write gather: rank 0 also holds the receive window
    // gguf:TYPE of a vision-language checkpoint (model::has_mmproj) also writes its projector,
    // mmproj-<name>-<TYPE>.gguf; false (--no-mmproj): the text model only
    bool mmproj = true;
};

// Quantized input (docs/formats.md "Quantized bases"): how a stored quantized weight becomes its logical tensor. The
// Source's file/offset/nbytes are the stored weight bytes, its dtype/shape the logical (dequantized) tensor; the
// auxiliary tensors (absmax, quant maps, SCB, FP8 scales) are read whole and never emitted.
enum class DequantKind { Bnb4, Int8, Fp8, Mxfp4, PackedInt };
struct AuxTensor {
    std::uint32_t file = 0;
    std::string name;
    core::DType dtype = core::DType::F32;
    core::Shape shape;
    std::uint64_t offset = 0, nbytes = 0;
};
struct Dequant {
    DequantKind kind = DequantKind::Bnb4;
    core::DType stored = core::DType::U8;   // dtype of the stored weight (bnb quant_storage, I8, F8_E4M3/E5M2)
    std::vector<AuxTensor> aux;             // Bnb4: absmax, quant_map[, nested_absmax, nested_quant_map];
                                            // Int8: SCB; Fp8: the scale (weight_scale_inv / weight_scale);
                                            // Mxfp4: *_scales (the stored tensor is *_blocks);
                                            // PackedInt: weight_scale (the stored tensor is weight_packed)
    std::int64_t blocksize = 0;             // Bnb4; PackedInt: the group size
    bool nested = false;                    // Bnb4 double quantization
    std::int64_t nested_blocksize = 0;
    float nested_offset = 0.0f;
    std::int64_t block_rows = 0, block_cols = 0;  // Fp8 scale grid block
    int bits = 0;                                 // PackedInt: bits per code
};

// A tensor read from an input file: raw bytes [offset, offset+nbytes) of input_files[file].
struct Source {
    std::uint32_t file = 0;
    std::string name;                // tensor name in the input (for errors)
    core::DType dtype = core::DType::F32;
    core::Shape shape;
    std::uint64_t offset = 0, nbytes = 0;
    std::int64_t row_begin = 0, row_end = -1;   // slice along dim -2 after merging (-1: all rows)
    std::int64_t row_step = 1;                  // of which every row_step-th row from row_begin
    // then, per matrix of the last two dims, every col_step-th column from col_begin up to col_end (-1: the last),
    // transposed if `transpose` (model::SourceSlice; gpt-oss's and Llama 4's fused experts)
    std::int64_t col_begin = 0, col_step = 1, col_end = -1;
    bool transpose = false;
    std::optional<lora::MergeTarget> merge;     // LoRA terms applied to the whole source tensor in f32
    std::optional<Dequant> dequant;             // stored quantized: dequantize before anything else

    // The row slice of dim -2 (with its step) and the column selection / transpose: whether any is taken; whether
    // it is computed per row of dim 0 (outer dims above the last two, e.g. a fused 3-D expert tensor's gate or up
    // half, or a column selection of a 2-D source: a row block then reads whole rows of dim 0 and slices each); the
    // end row; and the elements the source contributes to its item (all of them when not sliced).
    [[nodiscard]] bool reshaped() const noexcept {
        return col_step != 1 || col_begin != 0 || col_end >= 0 || transpose || row_step != 1;
    }
    [[nodiscard]] bool sliced() const noexcept { return !(row_begin == 0 && row_end < 0) || reshaped(); }
    [[nodiscard]] bool outer_sliced() const noexcept {
        const bool columns_only = (col_step != 1 || col_begin != 0 || col_end >= 0) && !transpose && row_step == 1 && row_begin == 0 && row_end < 0;
        return sliced() && (shape.size() >= 3 || (shape.size() == 2 && columns_only));
    }
    [[nodiscard]] std::int64_t slice_end() const noexcept {
        return row_end >= 0 ? row_end : shape.size() >= 2 ? shape[shape.size() - 2] : 1;
    }
    [[nodiscard]] std::int64_t kept_elems() const noexcept;
    // columns kept of each matrix of the last two dims, given its column count
    [[nodiscard]] std::int64_t kept_cols(std::int64_t cols) const noexcept {
        const std::int64_t end = col_end >= 0 && col_end < cols ? col_end : cols;
        return col_begin >= end ? 0 : (end - col_begin + col_step - 1) / col_step;
    }
};

// How an emit stores its values (<shardforge/encode.hpp>): RawEncoding (a safetensors dtype), GgmlEncoding (a ggml type
// and its importance matrix) or Bnb4Encoding (a bitsandbytes 4-bit Linear weight, written as a group of safetensors
// tensors: the packed codes at the emit's offset/nbytes, then the named Bnb4Parts — absmax, quant_map,
// [nested_absmax, nested_quant_map,] quant_state — each at its own range of the same file).
using formats::Bnb4Encoding;
using formats::Encoding;
using formats::GgmlEncoding;
using formats::RawEncoding;
// One output tensor written from a work item's f32 values.
struct Emit {
    std::uint32_t file = 0;          // index into Plan::files
    std::string name;                // output tensor name
    Encoding encoding;               // raw, ggml or bnb4 (default: raw BF16)
    std::vector<model::Transform> transforms;        // applied to a copy of the f32 values
    float scale = 1.0f;                              // multiplies the values after the transforms (!= 1: a copy)
    std::uint64_t offset = 0, nbytes = 0;            // absolute, in the output file (bnb4: the packed codes)
    // A window of the item: the emit writes rows [row_begin, row_end) of the item's dim 0 only, as a tensor of
    // `shape` (an expert's own tensor written from the stacked expert item that reads it, so one read serves
    // every output). row_end < 0: the whole item, shape unused.
    std::int64_t row_begin = 0, row_end = -1;
    core::Shape shape;
    [[nodiscard]] bool windowed() const noexcept { return row_end >= 0; }
};
// The emit writes values of `dtype` unchanged (raw in that dtype, no transform, scale 1): for an unmerged source of
// that dtype its bytes are the stored bytes (exec copies them: src/exec/pipeline.cpp).
[[nodiscard]] bool copies_stored_bytes(const Emit& e, core::DType dtype);
// Appends the source's sliced, reshaped values to dst: src holds the whole source (or whole rows of dim 0 with
// s.shape[0] set to their count) in f32, row-major.
void append_source_values(const std::vector<float>& src, const Source& s, std::vector<float>& dst);

// Batch jobs: another merge of an item's sources (another adapter set) written to its own emits. An item with
// variants reads its sources once; each variant is built from the unmerged f32 values like the item itself.
struct Variant {
    std::vector<std::optional<lora::MergeTarget>> merges;  // per source, same order as Item::sources
    std::vector<Emit> emits;
};

// A unit of work: build one f32 tensor (sources merged, sliced and concatenated along dim 0, or generated
// values), then write it to every emit. "One read, many outputs".
struct Item {
    std::vector<Source> sources;
    std::vector<float> generated;
    core::Shape shape;               // row-major shape of the f32 tensor
    std::vector<Emit> emits;
    std::vector<Variant> variants;   // batch jobs only: further merges of the same sources (empty otherwise)
    std::uint64_t cost = 0;          // scheduling weight: estimated nanoseconds (cost table, schedule.cpp)
    std::int64_t block_rows = 0;     // rows of dim 0 per work unit (row block); 0: the whole item is one unit
};
// The part of emit `e` of item `it` that rows [row_begin, row_end) of the item write: rows [first, last) of the
// emit's own rows (its window's, or the item's), out of `rows`, at bytes [offset, offset + nbytes) of the emit.
// Empty (first == last, nbytes 0) when the rows miss the emit's window.
struct EmitPart {
    std::int64_t rows = 1, first = 0, last = 0;
    std::uint64_t offset = 0, nbytes = 0;
    [[nodiscard]] bool empty() const noexcept { return first >= last && rows > 0; }
    [[nodiscard]] bool whole() const noexcept { return first == 0 && last == rows; }
};
[[nodiscard]] EmitPart emit_part(const Item& it, const Emit& e, std::int64_t row_begin, std::int64_t row_end);

// A unit of work: rows [row_begin, row_end) of dim 0 of one item (all rows when the item is not split). Every
// emit of the item gets the matching byte range (quantized rows are independent; transforms and imatrix experts
// never straddle a block boundary, see schedule.cpp). Units are numbered in plan order: a stable id.
struct Unit {
    std::uint32_t item = 0;
    std::int64_t row_begin = 0, row_end = 0;
    std::uint64_t cost = 0;          // estimated nanoseconds
};
// Estimated seconds per stage (cost table measured on the reference machine, schedule.cpp).
struct StageEstimate {
    double read = 0, dequant = 0, merge = 0, quantize = 0, write = 0;
    [[nodiscard]] double total() const { return read + dequant + merge + quantize + write; }
};

enum class FileKind { Tensors, Text, Copy };
struct FileOut {
    std::string name;                // relative to out dir
    FileKind kind = FileKind::Tensors;
    std::string header;              // Tensors: bytes at offset 0; Text: the whole content
    std::string copy_from;           // Copy: absolute source path
    std::uint64_t size = 0;
};

struct Plan {
    std::string out_dir;
    std::vector<std::string> input_files;      // base model tensor files
    std::vector<std::string> adapter_files;    // adapter_model.safetensors per adapter (index = lora adapter id)
    std::vector<FileOut> files;
    std::vector<Item> items;
    std::vector<std::string> notes;            // human-readable decisions (untied embeddings, fallbacks, ...)
    std::uint64_t input_bytes = 0, output_bytes = 0;
    std::uint64_t peak_item_bytes = 0;         // largest working set of one unit (memory bound per thread)
    std::uint64_t max_memory_per_rank = 0;     // the budget the blocks were sized for (0: none)
    std::uint64_t peak_rank_bytes = 0;         // estimated peak memory of a rank: overhead + slots x peak unit
    int threads = 1;                           // worker threads per rank the sizing assumed (cap when budgeted)
    int gather_window = 4;                     // in-flight encoded blocks per rank in gather mode
};

// Reads configs and headers only (never tensor data) and builds the plan. Throws core::Error.
[[nodiscard]] Plan make_plan(const Options& opt);
[[nodiscard]] std::string to_json(const Plan& p);
[[nodiscard]] Plan from_json(const std::string& s);
// Every unit of work of the plan, in plan order (items split into their row blocks).
[[nodiscard]] std::vector<Unit> units(const Plan& p);
// Which units rank r executes (indices into units(p)): deterministic contiguous ranges of the units in input-file
// order, cut at equal shares of the estimated cost, so a rank reads few input shards. Never affects output bytes
// (offsets are fixed by the plan), only who writes them.
[[nodiscard]] std::vector<std::uint32_t> assign_units(const std::vector<Unit>& u, const Plan& p, int rank,
                                                      int n_ranks);
// Estimated time per stage of one unit, from the cost table.
[[nodiscard]] StageEstimate estimate(const Plan& p, const Unit& u);
// The merged GGUF an Ollama Modelfile points FROM: the Q4_K_M output if any, else the first (first part if split);
// "" when the plan writes no merged GGUF.
[[nodiscard]] std::string preferred_gguf(const Plan& p);
// The GGUF LoRA adapter the plan writes (`<name>-lora-<type>.gguf`), or "".
[[nodiscard]] std::string lora_gguf(const Plan& p);
// ---------------------------------------------------------------- batch jobs (`shardforge run JOB.toml`)
// A job file: one base model, several variants (adapter sets, e.g. a hyperparameter sweep), each with its outputs.
struct Job {
    std::vector<Options> variants;  // one export per [[variant]], all of the same base
    std::vector<std::string> names; // the variants' names (unique)
    int threads = 0;                // 0 = default
};
// Parses a job file's TOML text (see jobs/sweep.toml). Relative paths are taken relative to `dir` (the job file's
// directory); reads no other file. Syntax errors: BadInput, other mistakes: Usage; both name `origin`.
[[nodiscard]] Job parse_job(std::string_view toml_text, const std::filesystem::path& dir, const std::string& origin);
// One plan for every variant of a job: make_plan per variant, then items reading the same base bytes are fused
// (one read, several merge variants), so the base is read once whatever the number of variants. File names are
// relative to the common parent of the variants' output directories.
[[nodiscard]] Plan make_batch_plan(const Job& job);

// --dry-run text: files, sizes, per-rank bytes for n_ranks, peak memory estimate.
[[nodiscard]] std::string describe(const Plan& p, int n_ranks);

}  // namespace shardforge::plan
