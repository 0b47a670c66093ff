// CUDA quantizers of the IQ4_NL, IQ4_XS, TQ1_0 and TQ2_0.
#include "launch.cuh"

namespace shardforge::quant::cuda {

bool launch_quantize_small(GgmlType type, tasks::QArgs a, std::int64_t nrows, cudaStream_t s) {
    return tasks::visit_quantize_small(type, a.qw != nullptr,
                                      [&](auto task) { launch_task<decltype(task)>(a, nrows, s); });
}

}  // namespace shardforge::quant::cuda
