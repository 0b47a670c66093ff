// Host-side helpers of exec's CUDA files (delta.cu, dora.cu): the CUDA error check and an owned device buffer of
// floats. Private to src/exec/cuda.
#pragma once
#include <shardforge/core.hpp>

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

namespace shardforge::exec::gpu {

inline void check_cuda(cudaError_t e, const char* what) {
    if (e != cudaSuccess)
        throw core::Error(core::ErrorKind::Internal, "", "", core::cat("CUDA error in ", what, ": ", cudaGetErrorString(e)));
}

// `count` floats on the current device, freed with the buffer; `what` names the allocation in errors.
struct DevFloats {
    float* p = nullptr;
    DevFloats() = default;
    DevFloats(const DevFloats&) = delete;
    DevFloats& operator=(const DevFloats&) = delete;
    ~DevFloats() { cudaFree(p); }
    void alloc(std::size_t count, const char* what) {
        check_cuda(cudaMalloc(reinterpret_cast<void**>(&p), std::max<std::size_t>(count, 1) * sizeof(float)), what);
    }
};

}  // namespace shardforge::exec::gpu
