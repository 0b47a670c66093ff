// quant::gpu without the CUDA backend (SHARDFORGE_HAVE_CUDA == 0): reports its absence; Device::open throws.
#include <shardforge/quant.hpp>

#if !SHARDFORGE_HAVE_CUDA
namespace shardforge::quant::gpu {

bool compiled() noexcept { return false; }
std::string build_info() { return "not built"; }
int device_count(std::string* why) {
    if (why) *why = "this shardforge was built without CUDA (configure with -DSHARDFORGE_WITH_CUDA=ON and nvcc)";
    return 0;
}
std::unique_ptr<Device> Device::open(int, std::size_t) {
    std::string why;
    (void)device_count(&why);
    throw core::Error(core::ErrorKind::Unsupported, "", "", why);
}

}  // namespace shardforge::quant::gpu
#endif
