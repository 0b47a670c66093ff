// shardforge formats, imatrix: llama.cpp importance-matrix files (src/formats/imatrix.cpp). Part of
// <shardforge/formats.hpp>.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace shardforge::formats {

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

}  // namespace shardforge::formats
