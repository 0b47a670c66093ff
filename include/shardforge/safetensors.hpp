// shardforge formats, safetensors: the strict reader (one file, or a sharded model directory), the writer's layout
// and the Hugging Face sharding conventions (src/formats/safetensors*.cpp). Part of <shardforge/formats.hpp>.
#pragma once
#include <shardforge/core.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
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

// ==== end safetensors ====

}  // namespace shardforge::formats
