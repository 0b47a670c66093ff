// CUDA quantizers of the K-quants (Q2_K..Q6_K, with and without imatrix).
#include "launch.cuh"

namespace shardforge::quant::cuda {

bool launch_quantize_kquant(GgmlType type, tasks::QArgs a, std::int64_t nrows, cudaStream_t s) {
    return tasks::visit_quantize_kquant(type, a.qw != nullptr,
                                      [&](auto task) { launch_task<decltype(task)>(a, nrows, s); });
}

}  // namespace shardforge::quant::cuda
