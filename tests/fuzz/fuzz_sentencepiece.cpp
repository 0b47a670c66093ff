// Fuzz target: a SentencePiece tokenizer.model (protobuf ModelProto), model::parse_sentencepiece.
#include <shardforge/model.hpp>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    sf_fuzz::expect_only_core_errors("fuzz_sentencepiece", [&] {
        const auto m = shardforge::model::parse_sentencepiece(bytes, "tokenizer.model");
        if (m.pieces.empty()) std::abort();  // documented: no pieces -> BadInput
    });
    return 0;
}
