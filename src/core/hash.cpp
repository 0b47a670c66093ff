// SHA-256 through OpenSSL's EVP interface, and lower-case hex.
#include <shardforge/core.hpp>

#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <vector>

namespace shardforge::core {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
        EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
        throw Error(ErrorKind::Internal, "", "", "OpenSSL SHA-256 unavailable");
    }
}

Sha256::~Sha256() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256::update(std::span<const std::byte> bytes) {
    EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size());
}

void Sha256::update(std::string_view bytes) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), bytes.data(), bytes.size()); }

Sha256Digest Sha256::final() {
    Sha256Digest d{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), d.data(), &n);
    return d;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(2 * bytes.size());
    for (const std::uint8_t b : bytes) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

std::string sha256_hex(std::string_view bytes) {
    Sha256 h;
    h.update(bytes);
    return to_hex(h.final());
}

std::string sha256_file_hex(const std::string& path) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) throw Error(ErrorKind::Io, path, "", "cannot open for hashing");
    Sha256 h;
    std::vector<char> buf(4 << 20);
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) h.update(std::string_view(buf.data(), n));
    if (std::ferror(f.get())) throw Error(ErrorKind::Io, path, "", "read error while hashing");
    return to_hex(h.final());
}

}  // namespace shardforge::core
