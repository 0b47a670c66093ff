// Cross-checks against an independent Python writer and reader (tests/reference/st_write.py, st_read.py; numpy,
// no safetensors package): we read what Python writes with the expected values, reproduce its bytes exactly with
// layout_safetensors + st_reference_order, and Python reads what we write with the expected values.
#include <shardforge/formats.hpp>

#include "safetensors_test_util.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sf = shardforge;
namespace fmt = shardforge::formats;
using sf::core::DType;
using namespace sf_st_test;

namespace {

const char *const python = "/usr/bin/python3";

fs::path source_dir() {
    if (const char *s = std::getenv("SHARDFORGE_SOURCE_DIR")) return s;
    return SHARDFORGE_TEST_SOURCE_DIR;
}

// Empty string when the reference tools are usable, else the reason to skip.
std::string skip_reason() {
    if (!fs::exists(python)) return "no /usr/bin/python3";
    if (!fs::exists(source_dir() / "tests/reference/st_write.py"))
        return "tests/reference not found (set SHARDFORGE_SOURCE_DIR)";
    if (std::system((std::string(python) + " -c 'import numpy' >/dev/null 2>&1").c_str()) != 0)
        return "numpy missing in /usr/bin/python3";
    return "";
}

// Runs a command and returns its stdout; fails the test on non-zero exit.
std::string run(const std::string &cmd) {
    std::string out;
    FILE *p = ::popen(cmd.c_str(), "r");
    if (!p) {
        ADD_FAILURE() << "popen failed: " << cmd;
        return out;
    }
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = ::pclose(p);
    EXPECT_EQ(rc, 0) << cmd << "\n" << out;
    return out;
}

template <class T> std::vector<T> read_as(const fmt::SafetensorsReader &r, const std::string &name) {
    const auto &t = r.at(name);
    std::vector<std::byte> raw(t.nbytes);
    r.read(t, 0, raw);
    std::vector<T> v(raw.size() / sizeof(T));
    if (!raw.empty()) std::memcpy(v.data(), raw.data(), raw.size());
    return v;
}

} // namespace

TEST(SafetensorsPython, ReadsAFileWrittenByTheIndependentWriterAndReproducesItsBytes) {
    // python3 and numpy are installed by jobs/install-deps.sh: without them this fails, never skips.
    if (const auto why = skip_reason(); !why.empty()) GTEST_FAIL() << why;
    TempDir d;
    const auto p = d / "py.safetensors";
    run(std::string(python) + " " + (source_dir() / "tests/reference/st_write.py").string() + " " + p.string());
    const auto r = fmt::SafetensorsReader::open(p);

    EXPECT_EQ(r.header().metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
    std::vector<std::string> order;
    for (const auto &t : r.header().tensors) order.push_back(t.name);
    EXPECT_EQ(order, (std::vector<std::string>{"c.idx", "a.bias", "b.weight", "z", "e"}));
    EXPECT_EQ(r.at("b.weight").shape, (sf::core::Shape{2, 3}));
    EXPECT_TRUE(r.at("z").shape.empty());
    EXPECT_EQ(read_as<std::int64_t>(r, "c.idx"), (std::vector<std::int64_t>{7, -9}));
    EXPECT_EQ(read_as<float>(r, "a.bias"), (std::vector<float>{0.5f, -1.0f, 2.0f}));
    // bf16 of 1, -2.5, 3.25, 0, 1e-3 (0x3a83126f -> 0x3a83), 65504 (0x477fe000 rounds up to 0x4780)
    EXPECT_EQ(read_as<std::uint16_t>(r, "b.weight"),
              (std::vector<std::uint16_t>{0x3f80, 0xc020, 0x4050, 0x0000, 0x3a83, 0x4780}));
    EXPECT_EQ(read_as<std::uint16_t>(r, "z"), (std::vector<std::uint16_t>{0x3e00})); // f16 1.5
    EXPECT_EQ(r.at("e").nbytes, 0u);

    // Same entries through our writer, in the reference order: identical header bytes and offsets.
    std::vector<fmt::StEntry> entries;
    for (const char *n : {"b.weight", "e", "a.bias", "z", "c.idx"}) {
        const auto &t = r.at(n);
        entries.push_back({t.name, t.dtype, t.shape});
    }
    std::vector<fmt::StEntry> ordered;
    for (const auto i : fmt::st_reference_order(entries)) ordered.push_back(entries[i]);
    const auto lay = fmt::layout_safetensors(ordered, {{"format", "pt"}});
    const std::string py_bytes = read_bytes(p);
    ASSERT_GE(py_bytes.size(), lay.header_bytes.size());
    EXPECT_EQ(py_bytes.substr(0, lay.header_bytes.size()), lay.header_bytes);
    EXPECT_EQ(lay.file_size, py_bytes.size());
    for (std::size_t i = 0; i < ordered.size(); ++i) EXPECT_EQ(lay.offsets[i], r.at(ordered[i].name).offset);
}

TEST(SafetensorsPython, IndependentReaderReadsWhatWeWrite) {
    if (const auto why = skip_reason(); !why.empty()) GTEST_FAIL() << why;
    // Caller order (not the reference order), two metadata keys, a 0-d and a zero-size tensor.
    const std::vector<fmt::StEntry> entries = {
        {"model.layers.0.mlp.up_proj.weight", DType::BF16, {2, 2}},
        {"scale", DType::F32, {}},
        {"ids", DType::I32, {3}},
        {"none", DType::F16, {0}},
        {"h", DType::F16, {2}},
    };
    const auto lay = fmt::layout_safetensors(entries, {{"format", "pt"}, {"source", "shardforge"}});
    std::string file = lay.header_bytes;
    file.resize(lay.file_size, '\0');
    auto put = [&](std::size_t i, const void *src, std::size_t n) {
        std::memcpy(file.data() + lay.offsets[i], src, n);
    };
    const std::uint16_t bf[] = {0x3f80, 0xbfc0, 0x4120, 0x0000}; // 1, -1.5, 10, 0
    const float scale = 0.25f;
    const std::int32_t ids[] = {1, -2, 2147483647};
    const std::uint16_t h[] = {0x3c00, 0xc100}; // 1, -2.5
    put(0, bf, sizeof bf);
    put(1, &scale, 4);
    put(2, ids, sizeof ids);
    put(4, h, sizeof h);
    TempDir d;
    write_bytes(d / "ours.safetensors", file);

    const std::string out = run(std::string(python) + " " + (source_dir() / "tests/reference/st_read.py").string() +
                                " " + (d / "ours.safetensors").string());
    EXPECT_EQ(out, "{\"format\":\"pt\",\"source\":\"shardforge\"}\n"
                   "model.layers.0.mlp.up_proj.weight BF16 [2,2] 1.0 -1.5 10.0 0.0\n"
                   "scale F32 [] 0.25\n"
                   "ids I32 [3] 1 -2 2147483647\n"
                   "none F16 [0]\n"
                   "h F16 [2] 1.0 -2.5\n");
}
