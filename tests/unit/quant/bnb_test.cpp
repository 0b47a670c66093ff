// bitsandbytes 4-bit kernels against bitsandbytes' own rules (bitsandbytes/functional.py: QuantState JSON, code tables,
// dynamic map; backends/default/ops.py quantize_4bit: midpoints and the FP4 +-0 rule) and Python's repr(). Whole-tensor
// bytes are checked against the numpy reference in tests/reference/bnb_out_check.py.
#include <shardforge/formats.hpp>
#include <shardforge/plan.hpp>
#include <shardforge/quant.hpp>

#include "quant/kernels/bnb_quant.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

namespace sf = shardforge;
namespace bnb = shardforge::quant::bnb;

TEST(Bnb4, Nf4MidpointsAreTheSpecThresholds) {
    // quantize_4bit: fp32 midpoints of the NF4 table, bit-identical to the CUDA decision-tree thresholds.
    const char* spec[15] = {"-0.848096371", "-0.610632896", "-0.45999527", "-0.33967942", "-0.234607399",
                            "-0.137911737", "-0.0455250181", "0.0397901498", "0.120255247", "0.203521252",
                            "0.292013764", "0.389312536", "0.501663446", "0.64278692", "0.861478448"};
    bnb::Table4 t;
    bnb::make_table4(false, t);
    for (int i = 0; i < 15; ++i) EXPECT_EQ(t.mids[i], std::strtof(spec[i], nullptr)) << i;
    for (int i = 0; i < 16; ++i) EXPECT_EQ(t.code_of_bucket[i], i);  // NF4 is sorted already
}

TEST(Bnb4, Fp4TableAndSignedZeroRule) {
    bnb::Table4 t;
    bnb::make_table4(true, t);
    EXPECT_EQ(sf::core::f32_bits(t.values[1]), 0x3baaaaabu);
    EXPECT_EQ(sf::core::f32_bits(t.values[2]), 0x3f2aaaabu);
    EXPECT_EQ(sf::core::f32_bits(t.values[8]), 0x80000000u);
    EXPECT_EQ(t.values[11], -1.0f);
    // quantize_4bit: 0 < y <= 0.0026 encodes as 8 (-0), -0.0026 < y <= 0 as 0 (+0); 1 -> 3, -1 -> 11.
    EXPECT_EQ(bnb::code4(t, 0.0f), 0);
    EXPECT_EQ(bnb::code4(t, -0.001f), 0);
    EXPECT_EQ(bnb::code4(t, 0.001f), 8);
    EXPECT_EQ(bnb::code4(t, 0.0026f), 8);
    EXPECT_EQ(bnb::code4(t, 0.003f), 1);
    EXPECT_EQ(bnb::code4(t, 1.0f), 3);
    EXPECT_EQ(bnb::code4(t, -1.0f), 11);
}

TEST(Bnb4, MidpointTiesGoToTheLowerCode) {
    bnb::Table4 t;
    bnb::make_table4(false, t);
    for (int i = 0; i < 15; ++i) {
        EXPECT_EQ(bnb::code4(t, t.mids[i]), i);
        EXPECT_EQ(bnb::code4(t, std::nextafter(t.mids[i], 2.0f)), i + 1);
    }
}

TEST(Bnb4, DynamicMap) {
    float m[256];
    sf::quant::bnb_dynamic_map(m);
    EXPECT_EQ(m[0], -0.99296875f);
    EXPECT_EQ(m[127], 0.0f);
    EXPECT_EQ(m[255], 1.0f);
    for (int i = 1; i < 256; ++i) EXPECT_LT(m[i - 1], m[i]) << i;
    for (int i = 0; i < 127; ++i) EXPECT_EQ(m[i], -m[254 - i]) << i;  // symmetric around index 127
}

TEST(Bnb4, AllZeroBlocks) {
    // Full zero block: absmax stored 0 (unclamped), codes of 0.0; trailing partial zero block: absmax 1e-38.
    std::vector<float> x(64 + 10, 0.0f);
    sf::quant::Bnb4Tensor q;
    sf::quant::bnb4_quantize({}, x.data(), static_cast<std::int64_t>(x.size()), q);
    ASSERT_EQ(q.absmax.size(), 2u);
    EXPECT_EQ(q.absmax[0], 0.0f);
    EXPECT_EQ(q.absmax[1], 1e-38f);
    for (auto b : q.packed) EXPECT_EQ(b, 0x77);  // NF4 code 7 is 0.0
}

TEST(Bnb4, OddCountPadsWithZeroCode) {
    const float x[3] = {1.0f, -1.0f, 1.0f};
    sf::quant::Bnb4Tensor q;
    sf::quant::bnb4_quantize({}, x, 3, q);
    ASSERT_EQ(q.packed.size(), 2u);
    EXPECT_EQ(q.packed[0], 0xf0);
    EXPECT_EQ(q.packed[1], 0xf7);
}

TEST(Bnb4, DoubleQuantDequantizesWithTheStoredOffset) {
    std::vector<float> x(64 * 300);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i) * 0.37f) * (1.0f + static_cast<float>(i % 977) * 0.01f);
    sf::quant::Bnb4Spec s;
    s.double_quant = true;
    sf::quant::Bnb4Tensor q;
    sf::quant::bnb4_quantize(s, x.data(), static_cast<std::int64_t>(x.size()), q);
    ASSERT_EQ(q.absmax_codes.size(), 300u);
    ASSERT_EQ(q.nested_absmax.size(), 2u);
    float m[256];
    sf::quant::bnb_dynamic_map(m);
    for (std::size_t i = 0; i < 300; ++i) {
        const float a = m[q.absmax_codes[i]] * q.nested_absmax[i / 256];
        EXPECT_EQ(q.absmax[i], a + q.nested_offset);
    }
}

TEST(Bnb4, NonFiniteInputIsRefused) {
    const float x[2] = {1.0f, std::nanf("")};
    sf::quant::Bnb4Tensor q;
    EXPECT_THROW(sf::quant::bnb4_quantize({}, x, 2, q), sf::core::Error);
}

TEST(BnbState, PythonRepr) {
    // Expected strings from CPython's repr(float(...)).
    const std::pair<double, const char*> cases[] = {
        {static_cast<double>(0.0123456f), "0.012345599941909313"},
        {static_cast<double>(1e-5f), "9.999999747378752e-06"},
        {static_cast<double>(1e16f), "1.0000000272564224e+16"},
        {static_cast<double>(123456.78f), "123456.78125"},
        {static_cast<double>(1e-4f), "9.999999747378752e-05"},
        {static_cast<double>(0.00012345f), "0.0001234499941347167"},
        {static_cast<double>(1e-45f), "1.401298464324817e-45"},
        {3.0, "3.0"}, {65504.0, "65504.0"}, {1e16, "1e+16"}, {1e-5, "1e-05"}, {0.0001, "0.0001"},
        {1234567890123456.0, "1234567890123456.0"}, {-2.5, "-2.5"}, {0.0, "0.0"}, {1e22, "1e+22"},
    };
    for (const auto& [v, s] : cases) EXPECT_EQ(sf::formats::python_float_repr(v), s) << s;
}

TEST(BnbState, JsonMatchesSpecExample) {
    sf::formats::BnbQuantState s;
    s.nf4 = true;
    s.dtype = sf::core::DType::BF16;
    s.shape = {4096, 11008};
    s.nested = true;
    s.nested_offset = 0.0123456f;
    EXPECT_EQ(sf::formats::bnb_quant_state_json(s),
              "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [4096, 11008], "
              "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.012345599941909313}");
    EXPECT_GE(sf::formats::bnb_quant_state_reserved(s), sf::formats::bnb_quant_state_json(s).size());
    s.nested = false;
    EXPECT_EQ(sf::formats::bnb_quant_state_reserved(s), sf::formats::bnb_quant_state_json(s).size());
}

TEST(BnbState, WriterOutputParsesBack) {
    // Our writer's JSON (with the padding) through the quantized-input reader.
    sf::formats::BnbQuantState s;
    s.nf4 = false;
    s.dtype = sf::core::DType::F16;
    s.shape = {7, 9};
    s.nested = true;
    s.nested_offset = 1.25e-5f;
    std::string js = sf::formats::bnb_quant_state_json(s);
    js.resize(sf::formats::bnb_quant_state_reserved(s), ' ');
    const auto r = sf::formats::parse_bnb_quant_state(js, "fp4", "f", "t");
    EXPECT_FALSE(r.nf4);
    EXPECT_EQ(r.dtype, sf::core::DType::F16);
    EXPECT_EQ(r.shape, s.shape);
    EXPECT_TRUE(r.nested);
    EXPECT_EQ(r.nested_offset, s.nested_offset);
}

// The group's layout (what the plan reserves) and its bytes (what exec writes) meet by part name: every part
// encode_bnb4 produces has the size bnb4_part_specs planned for that part, with and without double quantization, the
// parts come in checkpoint order, placed_parts puts each part's bytes at the range planned for that part, and the
// quant_state part parses back to the values that were quantized.
TEST(BnbGroup, EncodedPartsMatchThePlannedLayout) {
    using P = sf::formats::Bnb4Part;
    for (const bool dq : {false, true}) {
        sf::formats::Bnb4Encoding b;
        b.dtype = sf::core::DType::BF16;
        b.spec.double_quant = dq;
        const sf::core::Shape shape{40, 70};  // 2800 elements: 44 blocks of 64, the last one partial
        sf::formats::BnbQuantState qs;
        qs.dtype = b.dtype;
        qs.shape = shape;
        qs.nested = dq;
        std::vector<float> v(2800);
        for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((static_cast<int>(i * 37 % 101) - 50)) / 64.0f;
        const auto specs = sf::formats::bnb4_part_specs(b.spec, qs);
        ASSERT_EQ(specs.size(), dq ? 5u : 3u);
        const std::vector<P> want = dq ? std::vector<P>{P::Absmax, P::QuantMap, P::NestedAbsmax, P::NestedQuantMap,
                                                        P::QuantState}
                                       : std::vector<P>{P::Absmax, P::QuantMap, P::QuantState};
        const std::vector<std::string> suffix = dq ? std::vector<std::string>{".absmax", ".quant_map", ".nested_absmax",
                                                                              ".nested_quant_map",
                                                                              ".quant_state.bitsandbytes__nf4"}
                                                   : std::vector<std::string>{".absmax", ".quant_map",
                                                                              ".quant_state.bitsandbytes__nf4"};
        // Plan the parts at distinct made-up offsets, by part.
        for (std::size_t k = 0; k < specs.size(); ++k) {
            EXPECT_EQ(specs[k].part, want[k]);
            EXPECT_EQ(specs[k].suffix, suffix[k]);
            b.parts.at(specs[k].part) = {1000 * (k + 1), specs[k].nbytes};
        }
        EXPECT_EQ(specs[0].nbytes, dq ? 44u : 44u * 4);
        EXPECT_EQ(specs[1].nbytes, 64u);
        if (dq) {
            EXPECT_EQ(specs[2].nbytes, 4u);  // one nested block of 256 absmax values
            EXPECT_EQ(specs[3].nbytes, 1024u);
        }
        const auto enc = sf::formats::encode_bnb4(b, shape, v, "w");
        EXPECT_EQ(enc.q.packed.size(), 1400u);
        const auto placed = sf::formats::placed_parts(b, enc, "w");
        ASSERT_EQ(placed.size(), specs.size());
        for (std::size_t k = 0; k < placed.size(); ++k) {
            EXPECT_EQ(placed[k].first.offset, 1000 * (k + 1)) << suffix[k];
            EXPECT_EQ(placed[k].second.size(), specs[k].nbytes) << suffix[k];
            EXPECT_EQ(placed[k].second.data(), enc.bytes(want[k]).data()) << suffix[k];
        }
        EXPECT_EQ(enc.bytes(P::Absmax).data(), dq ? reinterpret_cast<const std::byte*>(enc.q.absmax_codes.data())
                                                  : reinterpret_cast<const std::byte*>(enc.q.absmax.data()));
        const auto js_bytes = enc.bytes(P::QuantState);
        const std::string js(reinterpret_cast<const char*>(js_bytes.data()), js_bytes.size());
        const auto back = sf::formats::parse_bnb_quant_state(js, "nf4", "f", "w");
        EXPECT_EQ(back.shape, shape);
        EXPECT_EQ(back.nested, dq);
        if (dq) {
            EXPECT_EQ(back.nested_offset, enc.q.nested_offset);
        }
    }
}

// A group whose planned parts do not match its double quantization (a nested part missing) or whose planned size
// of a part differs from the encoded one is refused before any byte is written.
TEST(BnbGroup, PlacedPartsRefuseAMismatchedLayout) {
    sf::formats::Bnb4Encoding b;
    b.spec.double_quant = true;
    const sf::core::Shape shape{4, 64};
    sf::formats::BnbQuantState qs;
    qs.shape = shape;
    qs.nested = true;
    const std::vector<float> v(256, 0.5f);
    const auto specs = sf::formats::bnb4_part_specs(b.spec, qs);
    for (const auto& s : specs) b.parts.at(s.part) = {0, s.nbytes};
    const auto enc = sf::formats::encode_bnb4(b, shape, v, "w");
    EXPECT_EQ(sf::formats::placed_parts(b, enc, "w").size(), 5u);
    auto missing = b;
    missing.parts.nested_quant_map.reset();
    EXPECT_THROW((void)sf::formats::placed_parts(missing, enc, "w"), sf::core::Error);
    auto short_map = b;
    short_map.parts.quant_map.nbytes = 60;
    EXPECT_THROW((void)sf::formats::placed_parts(short_map, enc, "w"), sf::core::Error);
}

// The plan JSON keeps its bnb layout ("po"/"pb" in checkpoint order) and gives every part back by name.
TEST(BnbPlan, EmitRoundTripsThroughPlanData) {
    for (const bool dq : {false, true}) {
        sf::plan::Plan p;
        sf::plan::Item it;
        sf::plan::Emit e;
        sf::plan::Bnb4Encoding b;
        b.dtype = sf::core::DType::F16;
        b.spec.type = sf::quant::Bnb4Type::FP4;
        b.spec.double_quant = dq;
        b.parts.absmax = {10, 1};
        b.parts.quant_map = {20, 2};
        if (dq) {
            b.parts.nested_absmax = sf::formats::ByteRange{30, 3};
            b.parts.nested_quant_map = sf::formats::ByteRange{40, 4};
        }
        b.parts.quant_state = {50, 5};
        e.encoding = b;
        it.emits.push_back(e);
        p.items.push_back(it);
        const sf::plan::Plan q = sf::plan::from_json(sf::plan::to_json(p));
        const auto* f = std::get_if<sf::plan::Bnb4Encoding>(&q.items.at(0).emits.at(0).encoding);
        ASSERT_NE(f, nullptr);
        EXPECT_EQ(f->dtype, sf::core::DType::F16);
        EXPECT_EQ(f->spec.type, sf::quant::Bnb4Type::FP4);
        EXPECT_EQ(f->spec.double_quant, dq);
        EXPECT_EQ(f->parts.absmax, (sf::formats::ByteRange{10, 1}));
        EXPECT_EQ(f->parts.quant_map, (sf::formats::ByteRange{20, 2}));
        EXPECT_EQ(f->parts.nested_absmax.has_value(), dq);
        if (dq) {
            EXPECT_EQ(*f->parts.nested_absmax, (sf::formats::ByteRange{30, 3}));
            EXPECT_EQ(*f->parts.nested_quant_map, (sf::formats::ByteRange{40, 4}));
        }
        EXPECT_EQ(f->parts.quant_state, (sf::formats::ByteRange{50, 5}));
    }
}
