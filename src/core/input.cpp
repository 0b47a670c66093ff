// Bounded reads of small input files and a JSON nesting check (core.hpp, "small input files").
#include <shardforge/core.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shardforge::core {

std::uint64_t input_file_cap(std::string_view filename) noexcept {
    const auto slash = filename.find_last_of('/');
    const std::string_view name = slash == std::string_view::npos ? filename : filename.substr(slash + 1);
    for (const std::string_view big :
         {"tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt", "tokenizer_config.json",
          "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json",
          "model.safetensors.index.json"})
        if (name == big) return max_tokenizer_file_bytes;
    return max_config_file_bytes;
}

std::string read_input_file(const std::string& path, std::uint64_t max_bytes) {
    const std::uint64_t cap = max_bytes ? max_bytes : input_file_cap(path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(ErrorKind::Io, path, "", cat("cannot open for reading: ", std::strerror(errno)));
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw Error(ErrorKind::Io, path, "", cat("cannot stat: ", std::strerror(errno)));
    if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::BadInput, path, "", "not a regular file");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > cap)
        throw Error(ErrorKind::BadInput, path, "",
                    cat("file is ", human_size(size), ", larger than the ", human_size(cap),
                        " accepted for it (docs/formats.md, \"Hostile inputs\")"));
    std::string s(static_cast<std::size_t>(size), '\0');
    std::size_t done = 0;
    for (;;) {
        if (done == s.size()) {
            // The file may have grown since fstat: read on in chunks, still within the cap.
            if (s.size() >= cap) {
                char probe;
                const ssize_t r = ::read(fd, &probe, 1);
                if (r > 0)
                    throw Error(ErrorKind::BadInput, path, "", cat("file grew beyond the ", human_size(cap), " accepted for it"));
                if (r == 0) break;
                if (errno == EINTR) continue;
                throw Error(ErrorKind::Io, path, "", cat("read failed: ", std::strerror(errno)));
            }
            s.resize(static_cast<std::size_t>(std::min<std::uint64_t>(cap, s.size() + 65536)));
        }
        const ssize_t r = ::read(fd, s.data() + done, s.size() - done);
        if (r < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorKind::Io, path, "", cat("read failed: ", std::strerror(errno)));
        }
        if (r == 0) break;
        done += static_cast<std::size_t>(r);
    }
    s.resize(done);
    return s;
}

void check_json_depth(std::string_view text, const std::string& file) {
    std::size_t depth = 0;
    bool in_string = false, escaped = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max_json_depth)
                throw Error(ErrorKind::BadInput, file, "",
                            cat("JSON nested more than ", max_json_depth, " levels deep (at byte ", i, ")"));
        } else if ((c == '}' || c == ']') && depth > 0) {
            --depth;
        }
    }
}

}  // namespace shardforge::core
