// xet_hash: what the Xet conformance test (tests/conformance/xet/run.sh) compares with the official implementations.
//   xet_hash [--min-test 8192|8128] [--xorb-dir DIR] [--shard FILE] [--footer-timestamp T] FILE...
// The files are one upload session (src/hub/xet.hpp Packer): each is read in 1 MiB pieces through ChunkHasher and
// SHA-256, as a writer would feed them. Prints one JSON object: per file its size, sha256, xet hash, chunks
// ([xet-hex, length]) and terms; per xorb its hash, serialized size and chunk sources ([file, offset]). --xorb-dir
// writes each serialized xorb as DIR/<xet-hex>; --shard writes the shard (with the JS client's footer when
// --footer-timestamp is given). Exit 0, or 1 with a one-line error.
#include <nlohmann/json.hpp>
#include <shardforge/core.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hub/xet.hpp"

namespace sf = shardforge;
namespace xet = shardforge::hub::xet;
using nlohmann::json;

namespace {

using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;

File open_file(const std::string& path) {
    File f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) throw sf::core::Error(sf::core::ErrorKind::Io, path, "", "cannot open");
    return f;
}

int run(int argc, char** argv) {
    std::size_t min_test = xet::min_test_spec;
    std::string xorb_dir, shard_path;
    std::optional<std::uint64_t> footer;
    std::vector<std::string> paths;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", a + " needs a value");
            return argv[++i];
        };
        if (a == "--min-test") min_test = std::stoul(value());
        else if (a == "--xorb-dir") xorb_dir = value();
        else if (a == "--shard") shard_path = value();
        else if (a == "--footer-timestamp") footer = std::stoull(value());
        else paths.push_back(a);
    }
    if (min_test != xet::min_test_spec && min_test != xet::min_test_js)
        throw sf::core::Error(sf::core::ErrorKind::Usage, "", "", "--min-test is 8192 or 8128");

    xet::Packer packer;
    std::vector<xet::FileEntry> entries;
    json out = {{"min_test", min_test}, {"files", json::array()}, {"xorbs", json::array()}};
    std::vector<std::uint8_t> buf(1 << 20);
    for (std::size_t i_file = 0; i_file < paths.size(); ++i_file) {
        File f = open_file(paths[i_file]);
        xet::ChunkHasher hasher(min_test);
        sf::core::Sha256 sha;
        std::size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {
            hasher.update(std::span(buf).first(n));
            sha.update(std::as_bytes(std::span(buf).first(n)));
        }
        if (std::ferror(f.get())) throw sf::core::Error(sf::core::ErrorKind::Io, paths[i_file], "", "read error");
        const auto chunks = hasher.finish();
        const auto digest = sha.final();
        const auto e = packer.add_file(static_cast<std::uint32_t>(i_file), chunks, digest);
        json jc = json::array(), jt = json::array();
        for (const auto& c : chunks) jc.push_back({xet::to_hex(c.hash), c.length});
        for (const auto& t : e.terms)
            jt.push_back({{"xorb", t.xorb}, {"start", t.chunk_start}, {"end", t.chunk_end}, {"bytes", t.unpacked_bytes},
                          {"verification", xet::to_hex(t.verification)}});
        out["files"].push_back({{"path", paths[i_file]}, {"size", e.size}, {"sha256", sf::core::to_hex(digest)},
                                {"xet_hash", xet::to_hex(e.file_hash)}, {"chunks", jc}, {"terms", jt}});
        entries.push_back(e);
    }
    const auto xorbs = packer.finish();
    for (const auto& x : xorbs) {
        json src = json::array();
        for (const auto& s : x.sources) src.push_back({s.file, s.offset});
        out["xorbs"].push_back({{"hash", xet::to_hex(x.hash)}, {"serialized_bytes", x.serialized_bytes}, {"sources", src}});
    }
    if (!xorb_dir.empty()) {
        std::vector<File> files;
        for (const auto& p : paths) files.push_back(open_file(p));
        for (const auto& x : xorbs) {
            const auto bytes = xet::serialize_xorb(x, [&](const xet::ChunkSource& s, std::span<std::uint8_t> dst) {
                std::FILE* fp = files[s.file].get();
                if (std::fseek(fp, static_cast<long>(s.offset), SEEK_SET) != 0 ||
                    std::fread(dst.data(), 1, dst.size(), fp) != dst.size())
                    throw sf::core::Error(sf::core::ErrorKind::Io, paths[s.file], "", "short read");
            });
            std::ofstream o(xorb_dir + "/" + xet::to_hex(x.hash), std::ios::binary);
            o.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
            if (!o) throw sf::core::Error(sf::core::ErrorKind::Io, xorb_dir, "", "cannot write xorb");
        }
    }
    if (!shard_path.empty()) {
        const auto bytes = xet::serialize_shard(entries, xorbs, footer);
        std::ofstream o(shard_path, std::ios::binary);
        o.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
        if (!o) throw sf::core::Error(sf::core::ErrorKind::Io, shard_path, "", "cannot write shard");
    }
    std::cout << out.dump() << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "xet_hash: " << e.what() << "\n";
        return 1;
    }
}
