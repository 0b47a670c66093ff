// Error type, exit-code mapping and invariant failures.
#include <shardforge/core.hpp>

namespace shardforge::core {
namespace {
// Errors are one line: control bytes from untrusted files (keys, tensor names) are shown as \xNN, so a file can
// neither break the line nor send terminal escapes.
std::string one_line(const std::string& in) {
    std::string out;
    out.reserve(in.size());
    for (unsigned char c : in) {
        if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string compose(const std::string& file, const std::string& tensor, const std::string& why) {
    std::string s;
    if (!file.empty()) s += file + ": ";
    if (!tensor.empty()) s += "tensor '" + tensor + "': ";
    s += why;
    return one_line(s);
}
}  // namespace

Error::Error(ErrorKind kind, std::string file, std::string tensor, std::string why)
    : std::runtime_error(compose(file, tensor, why)),
      kind_(kind),
      file_(std::move(file)),
      tensor_(std::move(tensor)),
      why_(std::move(why)) {}

std::string_view to_string(ErrorKind k) noexcept {
    switch (k) {
        case ErrorKind::Usage: return "usage";
        case ErrorKind::BadInput: return "bad input";
        case ErrorKind::Unsupported: return "unsupported";
        case ErrorKind::Io: return "I/O error";
        case ErrorKind::Network: return "network";
        case ErrorKind::Verify: return "verification failed";
        case ErrorKind::Interrupted: return "interrupted";
        case ErrorKind::Internal: return "internal error";
    }
    return "internal error";
}

int exit_code(ErrorKind k) noexcept {
    switch (k) {
        case ErrorKind::Internal: return 1;
        case ErrorKind::Usage: return 2;
        case ErrorKind::BadInput: return 3;
        case ErrorKind::Unsupported: return 4;
        case ErrorKind::Io: return 5;
        case ErrorKind::Network: return 6;
        case ErrorKind::Verify: return 7;
        case ErrorKind::Interrupted: return 75;
    }
    return 1;
}

void fail_check(const char* cond, const char* file, int line, const std::string& msg) {
    throw Error(ErrorKind::Internal, "", "",
                cat(msg, " (check '", cond, "' failed at ", file, ":", line, "; this is a bug, please report it)"));
}

}  // namespace shardforge::core
