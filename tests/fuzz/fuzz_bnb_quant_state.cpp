// Fuzz target: a bitsandbytes packed quant_state (QuantState.as_dict in bitsandbytes/functional.py). Byte 0 picks the
// key suffix ("nf4" when even, else "fp4"), the rest is the JSON -> formats::parse_bnb_quant_state; an accepted state
// with at most 4096 elements is then dequantized from zero-filled arrays sized exactly as the plan requires (absmax
// count, nested_absmax count, packed bytes), so the kernels' block indexing is exercised on every accepted geometry.
#include <shardforge/formats.hpp>
#include <shardforge/quant.hpp>

#include "fuzz_common.hpp"

#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view type = (data[0] & 1) ? "fp4" : "nf4";
    const std::string_view json(reinterpret_cast<const char*>(data + 1), size - 1);
    sf_fuzz::expect_only_core_errors("fuzz_bnb_quant_state", [&] {
        const auto st = shardforge::formats::parse_bnb_quant_state(json, type, "model.safetensors", "w.quant_state");
        const std::int64_t n = shardforge::core::numel(st.shape);
        if (n > 4096) return;
        const std::int64_t nb = (n + st.blocksize - 1) / st.blocksize;
        std::vector<std::uint8_t> packed(static_cast<std::size_t>((n + 1) / 2), 0x5a), codes(static_cast<std::size_t>(nb), 3);
        std::vector<float> absmax(static_cast<std::size_t>(nb), 1.0f), nested_code(256, 0.5f), out(static_cast<std::size_t>(n));
        std::vector<float> nested(static_cast<std::size_t>((nb + st.nested_blocksize - 1) / st.nested_blocksize), 2.0f);
        shardforge::quant::Bnb4View v;
        v.packed = packed.data();
        v.code = st.nf4 ? shardforge::quant::bnb_nf4_code() : shardforge::quant::bnb_fp4_code();
        v.blocksize = st.blocksize;
        if (st.nested) {
            v.absmax_code = codes.data();
            v.nested_code = nested_code.data();
            v.nested_absmax = nested.data();
            v.nested_blocksize = st.nested_blocksize;
            v.nested_offset = st.nested_offset;
        } else {
            v.absmax = absmax.data();
        }
        v.out_dtype = st.dtype;
        shardforge::quant::dequant_bnb4(v, 0, n, out.data());
    });
    return 0;
}
