// CUDA quantizers of the IQ grid types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M; a.grid holds device copies of the grid tables).
#include "launch.cuh"

namespace shardforge::quant::cuda {

bool launch_quantize_grid(GgmlType type, tasks::QArgs a, std::int64_t nrows, cudaStream_t s) {
    return tasks::visit_quantize_grid(type, a.qw != nullptr,
                                      [&](auto task) { launch_task<decltype(task)>(a, nrows, s); });
}

}  // namespace shardforge::quant::cuda
