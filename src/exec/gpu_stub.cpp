// exec's GPU entry points in a build without CUDA: never reached (select_device returns no device), but linked.
#include <shardforge/exec.hpp>

#include "gpu.hpp"

#if !SHARDFORGE_HAVE_CUDA
namespace shardforge::exec {
namespace gpu {
void matmul(int, const float*, const float*, std::int64_t, std::int64_t, std::int64_t, float*, std::size_t) {
    throw core::Error(core::ErrorKind::Unsupported, "", "", "this shardforge was built without CUDA");
}
std::int64_t dora(int, float*, std::int64_t, std::int64_t, bool, const float*, std::size_t) {
    throw core::Error(core::ErrorKind::Unsupported, "", "", "this shardforge was built without CUDA");
}
std::string nccl_info() { return ""; }
}  // namespace gpu

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm>, int) {
    throw core::Error(core::ErrorKind::Unsupported, "", "", "this shardforge was built without CUDA/NCCL");
}
}  // namespace shardforge::exec
#endif
