// Test helper: prints make_modelfile()'s result for one chat template as JSON, for check_templates.mjs.
// usage: ollama_modelfile_dump TEMPLATE.jinja BOS EOS EOT
#include <shardforge/ollama.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace sf = shardforge;

int main(int argc, char** argv) {
    if (argc != 5) {
        std::cerr << "usage: " << argv[0] << " TEMPLATE.jinja BOS EOS EOT\n";
        return 2;
    }
    std::ifstream f(argv[1], std::ios::binary);
    if (!f) {
        std::cerr << "cannot open " << argv[1] << '\n';
        return 2;
    }
    std::stringstream ss;
    ss << f.rdbuf();
    std::string jinja = ss.str();
    if (!jinja.empty() && jinja.back() == '\n') jinja.pop_back();   // fixture files end with a newline
    sf::ollama::ModelfileInput in;
    in.from = "model.Q4_K_M.gguf";
    in.chat_template = jinja;
    in.tokens = {argv[2], argv[3], argv[4]};
    try {
        const auto mf = sf::ollama::make_modelfile(in);
        nlohmann::json j = {{"family", std::string(sf::ollama::family_name(mf.family))},
                            {"template", mf.go_template},
                            {"stop", mf.stop},
                            {"system", mf.system},
                            {"warnings", mf.warnings},
                            {"text", mf.text}};
        std::cout << j.dump(1) << '\n';
    } catch (const std::exception& e) {
        std::cerr << e.what() << '\n';
        return 1;
    }
    return 0;
}
