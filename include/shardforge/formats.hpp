// shardforge formats: on-disk file formats (safetensors, GGUF). Readers validate strictly and name the file and
// tensor in every error; writers produce header bytes from a plan so ranks can write data at final offsets.
// Depends on core and quant (ggml type sizes) only.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace shardforge::formats {

// ==== safetensors ====
// File layout (little endian):
//   u64 N | N bytes of UTF-8 JSON, padded with spaces | data section
//   JSON: {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}, ...}
//   offsets are relative to the data section start (8 + N). Sorted by begin, the ranges tile the data
//   section exactly (no hole, no overlap, no trailing bytes), as the reference Rust library requires.

inline constexpr std::uint64_t st_max_header_size = 100'000'000;  // the reference library's MAX_HEADER_SIZE

struct StTensor {
    std::string name;
    core::DType dtype = core::DType::F32;
    core::Shape shape;
    std::uint64_t offset = 0;  // ABSOLUTE byte offset of the data in the file
    std::uint64_t nbytes = 0;
};

struct StHeader {
    std::vector<StTensor> tensors;  // in data order (by offset; ties between zero-size tensors by name)
    std::map<std::string, std::string> metadata;
    std::uint64_t data_start = 0;  // 8 + N
};

// Pure validating parser of the JSON header (also the fuzz entry point). `header_json` is the N header bytes,
// `data_start` = 8 + N, `file_size` the real file size. Throws core::Error BadInput naming `file_for_errors` and
// the tensor when known.
[[nodiscard]] StHeader parse_safetensors_header(std::string_view header_json, std::uint64_t data_start,
                                                std::uint64_t file_size, const std::string& file_for_errors);

// One open .safetensors file: RAII fd, header validated at open. read() is const and thread-safe (pread).
class SafetensorsReader {
public:
    // Reads the 8-byte length and the header with pread and validates everything (BadInput / Io on failure).
    [[nodiscard]] static SafetensorsReader open(const std::filesystem::path& p);

    SafetensorsReader(SafetensorsReader&& o) noexcept;
    SafetensorsReader& operator=(SafetensorsReader&& o) noexcept;
    SafetensorsReader(const SafetensorsReader&) = delete;
    SafetensorsReader& operator=(const SafetensorsReader&) = delete;
    ~SafetensorsReader();

    const StHeader& header() const noexcept { return header_; }
    const std::filesystem::path& path() const noexcept { return path_; }
    std::uint64_t file_size() const noexcept { return file_size_; }
    const StTensor* find(std::string_view name) const;  // nullptr when absent
    const StTensor& at(std::string_view name) const;    // throws BadInput naming file and tensor
    // Reads exactly out.size() bytes of `t` starting `at` bytes into the tensor (at + size <= t.nbytes, else
    // Internal). Short read / EIO -> core::Error Io naming file and tensor.
    void read(const StTensor& t, std::uint64_t at, std::span<std::byte> out) const;

private:
    SafetensorsReader() = default;
    int fd_ = -1;
    std::filesystem::path path_;
    std::uint64_t file_size_ = 0;
    StHeader header_;
    std::map<std::string, std::size_t, std::less<>> by_name_;  // name -> index into header_.tensors
};

// The weights of a model or adapter, possibly sharded over several files.
class SafetensorsSet {
public:
    // `dir`/model.safetensors if present (transformers checks it first), else `dir`/model.safetensors.index.json:
    // weight_map must be {str: str}; shard paths must be relative without ".."; every referenced shard must exist
    // and hold the tensors mapped to it; a tensor in two shards is rejected; a shard tensor the index does not
    // list is kept (warning). Files are ordered by shard name.
    [[nodiscard]] static SafetensorsSet open_dir(const std::filesystem::path& dir);
    // Explicit files, in the given order (e.g. adapter_model.safetensors). Duplicate names across files: BadInput.
    [[nodiscard]] static SafetensorsSet open_files(std::vector<std::filesystem::path> files);

    std::size_t n_files() const noexcept { return files_.size(); }
    const SafetensorsReader& file(std::size_t i) const { return files_.at(i); }
    struct Ref {
        std::uint32_t file;
        const StTensor* tensor;
    };
    std::optional<Ref> find(std::string_view name) const;
    std::vector<std::string> names() const;  // in file order, then data order
    std::size_t n_tensors() const noexcept { return by_name_.size(); }

private:
    void index_names();
    std::vector<SafetensorsReader> files_;
    std::map<std::string, std::pair<std::uint32_t, std::size_t>, std::less<>> by_name_;  // -> (file, tensor)
};

// ---- writer side: layout only (ranks pwrite data at the final offsets)
struct StEntry {
    std::string name;
    core::DType dtype = core::DType::F32;
    core::Shape shape;
};
struct StLayout {
    std::string header_bytes;             // 8-byte length + compact JSON padded with spaces to a multiple of 8
    std::vector<std::uint64_t> offsets;   // absolute data offset per entry, same order as the entries
    std::uint64_t file_size = 0;
};
// Data is laid out in the order of `entries`; JSON is compact like serde_json ({"dtype","shape","data_offsets"}),
// "__metadata__" first (omitted when `metadata` is empty), tensors in entry order. Duplicate or invalid names
// throw Usage. For byte-identical output with safetensors.save_file, order entries with st_reference_order().
[[nodiscard]] StLayout layout_safetensors(const std::vector<StEntry>& entries,
                                          const std::map<std::string, std::string>& metadata);
// The order the reference Rust serializer uses ("descending dtype alignment"): its Dtype enum order, descending
// (I64 > F64 > F32 > I32 > BF16 > F16 > I16 > F8_E4M3 > F8_E5M2 > I8 > U8 > BOOL), then name bytewise. Returns
// the entry indices in that order.
[[nodiscard]] std::vector<std::size_t> st_reference_order(const std::vector<StEntry>& entries);

// ---- Hugging Face conventions
// transformers' convert_file_size_to_int: "5GB" = 5e9, "2GiB" = 2^31 (KiB..PiB binary, KB..PB decimal, any case),
// a unit ending in lower-case 'b' ("5Gb", "5gb") means bits (/8), plain digits are bytes; fractions ("1.5GB") as
// huggingface_hub's parse_size_to_int (int(float(v) * unit)). Garbage, negatives, overflow: Usage.
[[nodiscard]] std::uint64_t parse_hf_size(std::string_view s);
// "model-00001-of-00003.safetensors" (i is 0-based); n == 1 -> "model.safetensors".
[[nodiscard]] std::string hf_shard_name(std::size_t i, std::size_t n);
// huggingface_hub split_state_dict_into_shards_factory: walk tensors in order; a tensor > max gets a shard of its
// own, appended at once (so it can precede the still-open shard); otherwise close the open shard when adding would
// exceed max. Returns the 0-based shard per tensor.
[[nodiscard]] std::vector<std::uint32_t> assign_hf_shards(const std::vector<std::uint64_t>& nbytes,
                                                          std::uint64_t max_shard_size);
// transformers: json.dumps({"metadata": {["total_parameters": P,] "total_size": N}, "weight_map": {...}},
// indent=2, sort_keys=True) + "\n" (ASCII-escaped like Python's default). weight_map: (tensor, file) pairs.
[[nodiscard]] std::string make_hf_index_json(std::uint64_t total_size,
                                             const std::vector<std::pair<std::string, std::string>>& weight_map,
                                             std::optional<std::uint64_t> total_parameters = std::nullopt);

// ---- element conversion for the merge (src/formats/convert.cpp)
// F32/F16/BF16/F64/F8_E4M3/F8_E5M2 -> f32 (exact except F64, rounded to nearest); other types throw Unsupported.
void to_f32(core::DType src_type, const std::byte* src, float* dst, std::size_t n);
// f32 -> F32/F16/BF16 (RNE, core::f32_to_f16 / f32_to_bf16); other types throw Unsupported.
void from_f32(const float* src, core::DType dst_type, std::byte* dst, std::size_t n);

// ==== end safetensors ====

// ==== bitsandbytes quant_state ====
// The packed JSON of `P.weight.quant_state.bitsandbytes__<nf4|fp4>` (QuantState.as_dict in bitsandbytes/functional.py),
// e.g.
// {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008], "nested_blocksize": 256,
//  "nested_dtype": "float32", "nested_offset": 0.0123}. Unknown keys are ignored.
struct BnbQuantState {
    bool nf4 = true;                          // quant_type "nf4" (else "fp4")
    std::int64_t blocksize = 64;              // power of two, 16 ... 4096
    core::DType dtype = core::DType::BF16;    // dequantization output dtype: BF16 / F16 / F32
    core::Shape shape;                        // logical weight shape, 1..4 dims, elements < 2^48
    bool nested = false;                      // double quantization (all three nested_* keys present)
    std::int64_t nested_blocksize = 256;
    float nested_offset = 0.0f;               // the JSON double rounded to fp32
};
// Pure validating parser (also the fuzz entry point): `json` is the tensor's bytes, `key_type` the key suffix
// ("nf4"/"fp4", must equal quant_type). Throws core::Error BadInput naming `file` and `tensor`.
[[nodiscard]] BnbQuantState parse_bnb_quant_state(std::string_view json, std::string_view key_type,
                                                  const std::string& file, const std::string& tensor);
// ==== end bitsandbytes quant_state ====

// ==== GGUF ====
// GGUF v3 (llama.cpp's ggml/src/gguf.cpp, tools/gguf-split/gguf-split.cpp). Little-endian only, alignment 32. ne is
// ggml order: ne[0] = row length.

inline constexpr std::uint64_t gguf_default_alignment = 32;

// KV value types with their on-disk ids (gguf.h enum gguf_type).
enum class GgufValueType : std::uint32_t {
    UINT8 = 0, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64
};
inline constexpr std::uint32_t gguf_value_type_count = 13;
[[nodiscard]] std::string_view gguf_type_name(GgufValueType t) noexcept;  // "UINT32", "STRING", ...
[[nodiscard]] std::size_t gguf_type_size(GgufValueType t) noexcept;       // bytes; 0 for STRING and ARRAY

// A scalar, a string, or a homogeneous array (no arrays of arrays). Build with the factories, which keep
// the fields consistent; accessors throw Error(BadInput) naming the found type on a mismatch.
struct GgufValue {
    GgufValueType type = GgufValueType::UINT8;
    GgufValueType elem_type = GgufValueType::UINT8;  // meaningful when type == ARRAY
    std::string str;                  // STRING
    std::vector<std::string> strs;    // ARRAY of STRING
    std::vector<std::byte> raw;       // numeric/bool scalar or array elements, little-endian, packed

    static GgufValue u8(std::uint8_t v);
    static GgufValue i8(std::int8_t v);
    static GgufValue u16(std::uint16_t v);
    static GgufValue i16(std::int16_t v);
    static GgufValue u32(std::uint32_t v);
    static GgufValue i32(std::int32_t v);
    static GgufValue f32(float v);
    static GgufValue boolean(bool v);
    static GgufValue string(std::string v);
    static GgufValue u64(std::uint64_t v);
    static GgufValue i64(std::int64_t v);
    static GgufValue f64(double v);
    static GgufValue arr_str(std::vector<std::string> v);
    static GgufValue arr_u8(const std::vector<std::uint8_t>& v);
    static GgufValue arr_i8(const std::vector<std::int8_t>& v);
    static GgufValue arr_u16(const std::vector<std::uint16_t>& v);
    static GgufValue arr_i16(const std::vector<std::int16_t>& v);
    static GgufValue arr_u32(const std::vector<std::uint32_t>& v);
    static GgufValue arr_i32(const std::vector<std::int32_t>& v);
    static GgufValue arr_f32(const std::vector<float>& v);
    static GgufValue arr_bool(const std::vector<bool>& v);
    static GgufValue arr_u64(const std::vector<std::uint64_t>& v);
    static GgufValue arr_i64(const std::vector<std::int64_t>& v);
    static GgufValue arr_f64(const std::vector<double>& v);

    [[nodiscard]] bool is_array() const noexcept { return type == GgufValueType::ARRAY; }
    // Scalars: integer types (as_u64 rejects negatives, as_i64 values > INT64_MAX); as_f64 takes any number.
    [[nodiscard]] std::uint64_t as_u64() const;
    [[nodiscard]] std::int64_t as_i64() const;
    [[nodiscard]] double as_f64() const;
    [[nodiscard]] bool as_bool() const;  // BOOL only; any non-zero byte is true, as gguf.cpp
    [[nodiscard]] const std::string& as_string() const;
    // Arrays.
    [[nodiscard]] std::size_t array_size() const;
    [[nodiscard]] const std::vector<std::string>& array_strings() const;  // ARRAY of STRING
    [[nodiscard]] std::uint64_t array_u64(std::size_t i) const;           // integer elements
    [[nodiscard]] std::int64_t array_i64(std::size_t i) const;
    [[nodiscard]] double array_f64(std::size_t i) const;                  // any numeric element
    [[nodiscard]] std::size_t count() const noexcept;  // 1 for scalars, the element count for arrays
    friend bool operator==(const GgufValue&, const GgufValue&) = default;
};

struct GgufKV {
    std::string key;
    GgufValue value;
    friend bool operator==(const GgufKV&, const GgufKV&) = default;
};

struct GgufTensorDecl {
    std::string name;                // < 64 bytes
    std::vector<std::int64_t> ne;    // ggml order, at most 4 dims; ne[0] % block size == 0
    quant::GgmlType type;
};

struct GgufLayout {
    std::string header;                   // every byte before the data section, incl. zero padding to 32
    std::vector<std::uint64_t> offsets;   // ABSOLUTE file offset of each tensor's data
    std::vector<std::uint64_t> nbytes;    // data bytes of each tensor (without padding)
    std::uint64_t data_start = 0;         // == header.size()
    std::uint64_t file_size = 0;          // incl. the zero padding after the last tensor
};

// Pure. Validates and computes the exact file layout with the C writer's conventions: alignment 32,
// n_dims = ggml_n_dims (trailing 1s dropped, at least 1), offsets = running padded sum, padding after the
// header and after every tensor including the last. Rejects (Error BadInput, naming the tensor or key): names
// >= 64 bytes or duplicated, empty/duplicate keys, > 4 dims, negative dims, ne[0] not a multiple of the block
// size, element-count overflow, inconsistent GgufValues, a general.alignment other than u32 32, and known keys
// with the wrong type (llama.cpp's src/llama-model-loader.cpp table: e.g. llama.block_count must be u32, split.no u16).
[[nodiscard]] GgufLayout layout_gguf(const std::vector<GgufKV>& kvs, const std::vector<GgufTensorDecl>& tensors);

// The type llama.cpp requires for a known key (src/llama-model-loader.cpp, gguf-split, the tokenizer and adapter keys),
// or nullopt for keys it does not check.
// Array-typed keys report ARRAY; gguf_key_type_ok() also checks element types (and per-layer i32/u32 arrays).
[[nodiscard]] std::optional<GgufValueType> gguf_expected_key_type(std::string_view key);
[[nodiscard]] bool gguf_key_type_ok(std::string_view key, const GgufValue& v);

// Data bytes of a tensor (ne[0] must be a multiple of the block size); throws BadInput on overflow.
[[nodiscard]] std::uint64_t gguf_tensor_nbytes(const std::vector<std::int64_t>& ne, quant::GgmlType type);

// Split planning (llama.cpp's tools/gguf-split/gguf-split.cpp). Tensors keep their order; a new shard starts before
// tensor i when the current shard is non-empty and either it already holds max_tensors tensors, or its cumulative
// PAD(nbytes, 32) plus PAD(nbytes[i], 32) would exceed max_bytes (gguf-split's padded rule; metadata not counted). 0 =
// no limit.
// A tensor larger than max_bytes gets a shard of its own. Returns the shard index of each tensor.
// One shard => the caller writes no split keys and no -0000i-of-0000n suffix.
[[nodiscard]] std::vector<std::uint32_t> plan_gguf_split(const std::vector<std::uint64_t>& nbytes,
                                                         std::uint64_t max_bytes, std::uint32_t max_tensors);
// i is 0-based: gguf_split_name("out/model", 0, 3) == "out/model-00001-of-00003.gguf".
[[nodiscard]] std::string gguf_split_name(std::string_view stem, std::uint32_t i, std::uint32_t n);
// The three keys every shard carries: split.no u16 (0-based) = i, split.count u16 = n,
// split.tensors.count i32 = total tensors over all shards. Only shard 0 carries the model metadata.
[[nodiscard]] std::vector<GgufKV> gguf_split_kvs(std::uint32_t i, std::uint32_t n, std::int32_t total_tensors);

// Single-process convenience writer (tests, small files): layout_gguf + data, each data[i] must be exactly
// nbytes of tensor i. Error Io on write failure.
void write_gguf(const std::filesystem::path& path, const std::vector<GgufKV>& kvs,
                const std::vector<GgufTensorDecl>& tensors, const std::vector<std::span<const std::byte>>& data);

// Strict reader, checks as llama.cpp's ggml/src/gguf.cpp: magic, version 2/3 (0, 1, > 3 and byte-swapped rejected),
// counts sane against the file size (lying counts never cause huge allocations), strings <= 1 GiB, arrays
// <= 2^30 elements, no nested arrays, unique non-empty keys, general.alignment u32 power of two, tensor names
// < 64 bytes and unique, n_dims <= 4, known ggml type, ne[0] % block == 0, no overflow, offsets exactly the
// running padded sum, data within the file. Every error: Error(BadInput, file, tensor-if-any, why).
class GgufReader {
public:
    struct Tensor {
        std::string name;
        std::vector<std::int64_t> ne;  // as stored: n_dims entries (not padded to 4)
        quant::GgmlType type;
        std::uint64_t offset;          // ABSOLUTE file offset
        std::uint64_t nbytes;
    };

    [[nodiscard]] static GgufReader open(const std::filesystem::path& path);
    // Pure parse of a whole file held in memory (fuzzing, tests); the bytes are copied. name is used in errors.
    [[nodiscard]] static GgufReader parse(std::span<const std::byte> whole_file, std::string name);

    [[nodiscard]] const std::string& file() const noexcept { return file_; }
    [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
    [[nodiscard]] const std::vector<GgufKV>& kvs() const noexcept { return kvs_; }
    [[nodiscard]] const GgufKV* find(std::string_view key) const noexcept;
    [[nodiscard]] const std::vector<Tensor>& tensors() const noexcept { return tensors_; }
    [[nodiscard]] const Tensor* find_tensor(std::string_view name) const noexcept;
    [[nodiscard]] std::uint64_t alignment() const noexcept { return alignment_; }
    [[nodiscard]] std::uint64_t data_start() const noexcept { return data_start_; }
    [[nodiscard]] std::uint64_t file_size() const noexcept { return file_size_; }
    // Reads out.size() bytes of tensor t starting at byte `at` of its data (pread). Error Io / BadInput.
    void read(const Tensor& t, std::uint64_t at, std::span<std::byte> out) const;

    struct Source;  // file descriptor or in-memory bytes (gguf_reader.cpp)

private:
    GgufReader() = default;
    void load();  // parses and validates the header through src_
    std::string file_;
    std::uint32_t version_ = 0;
    std::vector<GgufKV> kvs_;
    std::vector<Tensor> tensors_;
    std::uint64_t alignment_ = gguf_default_alignment;
    std::uint64_t data_start_ = 0;
    std::uint64_t file_size_ = 0;
    std::shared_ptr<const Source> src_;
};

// `shardforge inspect FILE.gguf`: text in the shape of llama.cpp's gguf_dump.py (default mode): the KV table
// (index, type, count, key = value; GGUF.version/tensor_count/kv_count first, strings cut at 60 characters,
// arrays at 6 elements), then the tensors (index, elements, ne padded to 4, type, name).
[[nodiscard]] std::string gguf_dump(const GgufReader& r);

// ==== end GGUF ====

// ==== imatrix ====
// llama.cpp importance-matrix files, read as llama-quantize's load_imatrix() does (common/imatrix-loader.cpp):
//  * GGUF (current llama-imatrix): tensors "<name>.in_sum2" (F32, ne = {n_per_row, n_expert}) and "<name>.counts"
//    (F32, ne = {1, n_expert}); keys imatrix.datasets (string array), imatrix.chunk_count and imatrix.chunk_size
//    (u32), all three required as llama-quantize requires them. Value i of expert j = in_sum2 / (float)
//    lround(count_j), or 1 for every value of an expert whose count is 0.
//  * legacy .dat (detected by the missing "GGUF" magic): i32 n_entries >= 1; per entry i32 len, len name bytes,
//    i32 ncall, i32 nval >= 1, nval f32; then optionally i32 last chunk and (i32 len, dataset name). Value =
//    stored / (float)ncall when ncall > 0, else the stored value.
// by_tensor is keyed by the GGUF tensor name llama-quantize looks up ("blk.0.attn_q.weight"); for a 3-D MoE
// tensor the per-expert vectors are concatenated (expert e at [e*ne0, (e+1)*ne0)), which is how llama-quantize
// indexes it (row r of the tensor uses the slice of expert r / rows_per_expert). llama-quantize uses an entry only
// when its size == ne[0] * ne[2] of the tensor (and aborts on a mismatch, except for token_embd).
// Strict: Error(BadInput, file, entry, why) on truncation, trailing bytes, bad or negative counts, sizes that do
// not divide, sums without counts (and the reverse), non-F32 tensors, duplicate entries, empty files, and any
// non-finite final value (llama-quantize rejects those too). Error Io when the file cannot be read.
struct Imatrix {
    std::map<std::string, std::vector<float>> by_tensor;
    std::vector<std::string> datasets;  // GGUF: imatrix.datasets; legacy: the optional trailing name
    int chunk_count = 0;                // GGUF: imatrix.chunk_count; legacy: the optional trailing count, else 0
    int chunk_size = 0;                 // GGUF: imatrix.chunk_size; legacy: 0
    bool legacy = false;                // true for the .dat format
};
[[nodiscard]] Imatrix read_imatrix(const std::filesystem::path& path);
// ==== end imatrix ====

// ==== bitsandbytes quant_state writer (src/formats/bnb_state.cpp) ====
// The writer side of BnbQuantState (above): UTF-8 bytes of Python's json.dumps(dict) (", " and ": " separators),
// keys quant_type, blocksize, dtype, shape and, when nested, nested_blocksize, nested_dtype ("float32"),
// nested_offset (Python repr of the fp32 value as a double) — byte-identical to bitsandbytes' pack_dict_to_tensor.
[[nodiscard]] std::string python_float_repr(double v);  // repr(float): "0.012345599941909313", "1e-05", "3.0"
[[nodiscard]] std::string bnb_quant_state_json(const BnbQuantState& s);
// Bytes planned for the tensor before the data is known: the exact JSON length when not nested; when nested,
// room for the longest nested_offset repr (the JSON is then followed by spaces, which json.loads ignores).
[[nodiscard]] std::size_t bnb_quant_state_reserved(const BnbQuantState& s);

// One bitsandbytes 4-bit Linear weight as the safetensors tensors that store it: the packed codes under the
// weight's own name, then (in this order, the one checkpoints list) <name>.absmax (f32 per block, or u8 codes with
// double quant), <name>.quant_map (16 x f32), [<name>.nested_absmax (f32 per 256 blocks), <name>.nested_quant_map
// (256 x f32),] <name>.quant_state.bitsandbytes__<type> (the JSON above). Both the plan's layout (bnb4_part_specs)
// and the bytes (encode_bnb4) come from here, so the order is written once.
struct Bnb4PartSpec {
    std::string suffix;     // appended to the weight's name
    core::DType dtype = core::DType::U8;
    std::int64_t n = 0;     // elements
    std::uint64_t nbytes = 0;
};
// The parts after the packed codes; `qs` without nested_offset (unknown before the data: room is reserved).
[[nodiscard]] std::vector<Bnb4PartSpec> bnb4_part_specs(const quant::Bnb4Spec& spec, const BnbQuantState& qs);
struct Bnb4Encoded {
    quant::Bnb4Tensor q;                  // packed codes, absmax (or its codes), nested absmax and offset
    std::array<float, 16> quant_map{};
    std::vector<float> nested_quant_map;  // double quant only
    std::string quant_state;              // padded with spaces to its planned size
    // The bytes of each part of bnb4_part_specs(), in that order (views into this object).
    [[nodiscard]] std::vector<std::span<const std::byte>> parts() const;
};
// The values as the quant_state dtype rounds them: what loading the 16-bit model in 4-bit would quantize.
[[nodiscard]] std::vector<float> bnb4_rounded(core::DType dtype, std::span<const float> v);
// Quantizes v (the weight's f32 values, numel(qs.shape) of them) after rounding to qs.dtype. Throws BadInput
// (non-finite value) naming `tensor`.
[[nodiscard]] Bnb4Encoded encode_bnb4(const quant::Bnb4Spec& spec, const BnbQuantState& qs, std::span<const float> v,
                                      const std::string& tensor);
// ==== end bitsandbytes quant_state writer ====

// ==== f32 rows -> an output tensor's bytes (src/formats/encode.cpp) ====
// How one output tensor stores its values: a safetensors dtype, or a ggml type (GGUF).
struct RowEncoding {
    bool ggml = false;
    core::DType dtype = core::DType::BF16;          // !ggml
    quant::GgmlType gtype = quant::GgmlType::F32;   // ggml
    std::span<const float> imatrix;                 // ggml: importance per column (x experts for 3-D), or empty
    std::int64_t rows_per_expert = 0;               // ggml with one importance vector per expert
};
// The quantizer of a ggml type: quant::quantize_rows's contract and bits (CPU, or the same kernels on a device).
using QuantizeRows = std::function<void(quant::GgmlType type, const float* src, void* dst, std::int64_t nrows,
                                        std::int64_t n_per_row, const float* imatrix)>;
// Encodes v, consecutive rows of ne0 values, into `out` (exactly their encoded size; checked by the caller).
// `expert0`: the expert of the first row when the imatrix has one vector per expert (rows hold whole experts).
void encode_rows(const RowEncoding& e, std::span<const float> v, std::int64_t ne0, std::int64_t expert0,
                 std::span<std::byte> out, const QuantizeRows& quantize);
// ==== end f32 rows -> bytes ====

}  // namespace shardforge::formats
