// shardforge formats, GGUF: values, the writer's layout, split planning, the strict reader and the dump
// (src/formats/gguf_*.cpp). Part of <shardforge/formats.hpp>.
#pragma once
#include <shardforge/core.hpp>
#include <shardforge/quant.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace shardforge::formats {

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
    // false: n_dims = ggml_n_dims(ne) (trailing 1s dropped), as ggml's C writer (llama-quantize) does; true: every
    // entry of ne is written, as gguf-py's GGUFWriter (convert_hf_to_gguf.py) writes len(tensor.shape) dims.
    bool keep_dims = false;
};

struct GgufLayout {
    std::string header;                   // every byte before the data section, incl. zero padding to 32
    std::vector<std::uint64_t> offsets;   // ABSOLUTE file offset of each tensor's data
    std::vector<std::uint64_t> nbytes;    // data bytes of each tensor (without padding)
    std::uint64_t data_start = 0;         // == header.size()
    std::uint64_t file_size = 0;          // incl. the zero padding after the last tensor
};

// Pure. Validates and computes the exact file layout with the C writer's conventions: alignment 32,
// n_dims = ggml_n_dims (trailing 1s dropped, at least 1) unless the tensor's keep_dims is set, offsets = running padded sum, padding after the
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

}  // namespace shardforge::formats
