// --device selection (local rank -> visible CUDA device), --max-gpu-memory parsing and the --version backend line.
#include <shardforge/exec.hpp>

#include "gpu.hpp"

#include <cctype>
#include <cstdlib>

namespace shardforge::exec {

int local_rank() noexcept {
    for (const char* v : {"SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"}) {
        if (const std::string s = core::env(v); !s.empty()) {
            char* end = nullptr;
            const long r = std::strtol(s.c_str(), &end, 10);
            if (end != s.c_str() && *end == '\0' && r >= 0 && r < 1 << 20) return static_cast<int>(r);
        }
    }
    return 0;
}

std::unique_ptr<quant::gpu::Device> select_device(const std::string& device, std::size_t max_gpu_memory) {
    if (device == "cpu") return nullptr;
    if (device != "cuda" && device != "auto")
        throw core::Error(core::ErrorKind::Usage, "", "", "--device must be cpu, cuda or auto, not '" + device + "'");
    std::string why;
    const int n = quant::gpu::device_count(&why);
    if (n == 0) {
        if (device == "auto") {
            core::log::debug("--device auto: using the CPU (" + why + ")");
            return nullptr;
        }
        throw core::Error(core::ErrorKind::Unsupported, "", "",
                          core::cat("--device cuda: no usable CUDA device for local rank ", local_rank(), " (", why,
                                    "); use --device auto to fall back to the CPU"));
    }
    const int idx = local_rank() % n;
    auto d = quant::gpu::Device::open(idx, max_gpu_memory);
    core::log::debug(core::cat("local rank ", local_rank(), " uses ", d->name()));
    return d;
}

std::size_t parse_memory_size(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t mult = 1;
    const std::string suf = s.substr(i);
    if (suf == "K" || suf == "k" || suf == "KiB") mult = std::size_t{1} << 10;
    else if (suf == "M" || suf == "m" || suf == "MiB") mult = std::size_t{1} << 20;
    else if (suf == "G" || suf == "g" || suf == "GiB") mult = std::size_t{1} << 30;
    else if (suf == "T" || suf == "t" || suf == "TiB") mult = std::size_t{1} << 40;
    else if (!suf.empty() && suf != "B") i = 0;
    if (i == 0 || i > 15)
        throw core::Error(core::ErrorKind::Usage, "", "", "--max-gpu-memory: expected bytes like 4G or 512M, not '" + s + "'");
    return static_cast<std::size_t>(std::stoull(s.substr(0, i))) * mult;
}

std::string gpu_backend_info() {
    if (!quant::gpu::compiled()) return "GPU backend: not built (CPU only; --device cuda unavailable)";
    const std::string nccl = gpu::nccl_info();
    return "GPU backend: " + quant::gpu::build_info() + (nccl.empty() ? "" : ", " + nccl) +
           " (--device cuda|auto available)";
}

}  // namespace shardforge::exec
