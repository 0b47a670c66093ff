// `shardforge inspect PATH` (reads headers only).
#include "inspect.hpp"

#include <shardforge/formats.hpp>
#include <shardforge/lora.hpp>

#include <filesystem>
#include <map>

namespace fs = std::filesystem;

namespace shardforge::cli {
namespace {

std::string safetensors_summary(const formats::SafetensorsSet& set) {
    std::string s;
    std::map<core::DType, std::pair<std::uint64_t, std::uint64_t>> by_dtype;  // count, bytes
    std::uint64_t params = 0;
    for (std::size_t f = 0; f < set.n_files(); ++f) {
        const auto& rd = set.file(f);
        s += core::cat(rd.path().filename().string(), ": ", rd.header().tensors.size(), " tensors, ",
                       rd.file_size(), " bytes\n");
        for (const auto& t : rd.header().tensors) {
            s += core::cat("  ", t.name, "  ", core::dtype_name(t.dtype), " ", core::shape_str(t.shape), "\n");
            by_dtype[t.dtype].first += 1;
            by_dtype[t.dtype].second += t.nbytes;
            params += static_cast<std::uint64_t>(core::numel(t.shape));
        }
    }
    s += core::cat("total: ", set.n_tensors(), " tensors, ", params, " elements\n");
    for (const auto& [dt, v] : by_dtype)
        s += core::cat("  ", core::dtype_name(dt), ": ", v.first, " tensors, ", v.second, " bytes\n");
    return s;
}

}  // namespace

std::string inspect(const std::string& path) {
    const fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        if (fs::exists(p / "adapter_config.json")) {
            const lora::Adapter a = lora::open_adapter(p, 1.0f);
            std::string s = core::cat("PEFT LoRA adapter ", p.string(), "\n  r=", a.config.r,
                                      " lora_alpha=", a.config.lora_alpha, " use_rslora=", a.config.use_rslora,
                                      " use_dora=", a.config.use_dora, "\n  base_model_name_or_path=",
                                      a.config.base_model_name_or_path, "\n");
            return s + safetensors_summary(formats::SafetensorsSet::open_files({a.file}));
        }
        return core::cat("model directory ", p.string(), "\n") + safetensors_summary(formats::SafetensorsSet::open_dir(p));
    }
    if (p.extension() == ".gguf") return formats::gguf_dump(formats::GgufReader::open(p));
    if (p.extension() == ".safetensors") return safetensors_summary(formats::SafetensorsSet::open_files({p}));
    throw core::Error(core::ErrorKind::Usage, path, "", "not a .safetensors or .gguf file, nor a model/adapter directory");
}

}  // namespace shardforge::cli
