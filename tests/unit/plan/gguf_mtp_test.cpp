// gguf-mtp:TYPE outputs (convert_hf_to_gguf.py --mtp, llama.cpp's conversion/glm.py): the GLM-4.5 demo's MTP layer
// with the tensors it shares (token_embd, output_norm, output) as its own GGUF beside the full model, never the
// Modelfile's FROM; other families are refused.
#include <shardforge/model.hpp>
#include <shardforge/plan.hpp>

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include <unistd.h>

namespace fs = std::filesystem;
namespace sf = shardforge;

namespace {

fs::path demo_dir(const std::string& tag, sf::model::DemoArch arch) {
    const fs::path dir = fs::temp_directory_path() / ("sf_mtp_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    sf::model::DemoOptions o;
    o.arch = arch;
    o.n_layer = 2;
    sf::model::write_demo(dir, o);
    return dir;
}

sf::plan::Options options(const fs::path& dir, const std::string& formats) {
    sf::plan::Options o;
    o.base = dir / "base";
    o.adapters = {{dir / "adapter", 1.0f}};
    o.out = dir / "out";
    o.name = "m";
    o.outputs = sf::plan::parse_formats(formats);
    return o;
}

}  // namespace

TEST(GgufMtp, ParsesTheFormat) {
    const auto f = sf::plan::parse_formats("gguf-mtp:Q8_0,gguf:q8_0,gguf-mtp");
    ASSERT_EQ(f.size(), 3u);
    EXPECT_EQ(f[0].format, sf::plan::Format::GgufMtp);
    EXPECT_EQ(f[0].type, "q8_0");
    EXPECT_EQ(f[1].format, sf::plan::Format::Gguf);
    EXPECT_EQ(f[2].format, sf::plan::Format::GgufMtp);
    EXPECT_EQ(f[2].type, "auto");
}

TEST(GgufMtp, Glm4MoeWritesTheMtpLayerAsItsOwnFile) {
    const fs::path dir = demo_dir("glm", sf::model::DemoArch::Glm4Moe);
    const auto p = sf::plan::make_plan(options(dir, "gguf:f32,gguf-mtp:q8_0"));
    std::size_t full = p.files.size(), mtp = p.files.size();
    for (std::size_t i = 0; i < p.files.size(); ++i) {
        if (p.files[i].name == "m.F32.gguf") full = i;
        if (p.files[i].name == "mtp-m.Q8_0.gguf") mtp = i;
        if (p.files[i].name == "Modelfile") {
            EXPECT_NE(p.files[i].header.find("FROM ./m.F32.gguf"), std::string::npos) << p.files[i].header;
        }
    }
    ASSERT_LT(full, p.files.size());
    ASSERT_LT(mtp, p.files.size());
    std::set<std::string> in_mtp;
    std::size_t n_full = 0;
    for (const auto& it : p.items)
        for (const auto& e : it.emits) {
            if (e.file == mtp) in_mtp.insert(e.name);
            n_full += e.file == full;
        }
    // the MTP layer is block 2 (num_hidden_layers 2): its decoder layer (9 attention, 2 norms, router, bias,
    // 3 stacked experts, 3 shared) and 6 nextn tensors, plus the 3 shared with the trunk
    EXPECT_EQ(in_mtp.size(), 28u);
    for (const auto& n : in_mtp)
        EXPECT_TRUE(n.rfind("blk.2.", 0) == 0 || n == "token_embd.weight" || n == "output_norm.weight" ||
                    n == "output.weight")
            << n;
    EXPECT_TRUE(in_mtp.count("blk.2.nextn.eh_proj.weight"));
    EXPECT_EQ(n_full, in_mtp.size() + 14u + 19u);  // + the trunk: the dense layer and the MoE layer
    fs::remove_all(dir);
}

TEST(GgufMtp, RefusedForFamiliesWithoutIt) {
    const fs::path dir = demo_dir("llama", sf::model::DemoArch::Llama);
    try {
        (void)sf::plan::make_plan(options(dir, "gguf-mtp:f32"));
        ADD_FAILURE() << "gguf-mtp accepted for a Llama model";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Unsupported) << e.what();
        EXPECT_NE(std::string(e.what()).find("glm4moe"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}
