// SHARDFORGE_FAULT parsing and the hooks (see fault.hpp). Test-only; inert when the variable is unset.
#include "fault.hpp"

#include <shardforge/core.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace shardforge::exec::fault {
namespace {

enum class Kind {
    ShortWrite, ShortRead, EioWrite, Enospc, EioRead, TruncateInput, DieRank, SlowRank, StatvfsFree, HoldLastItem,
    DieAt, CorruptPartial
};
struct Fault {
    Kind kind;
    long n = 0;     // Nth call (I/O kinds), items (die_rank), ms (slow_rank)
    int rank = -1;  // -1: every rank
    std::string at;  // die_at: the step's name
};

std::atomic<int> g_rank{0};
std::atomic<long> g_writes{0}, g_reads{0}, g_items{0};

long number(const std::string& s, const std::string& spec) {
    char* end = nullptr;
    const long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < 0)
        throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: bad number '" + s + "' in '" + spec + "'");
    return v;
}

std::vector<Fault> parse(const char* env) {
    std::vector<Fault> out;
    std::string all(env), spec;
    for (std::size_t b = 0; b <= all.size();) {
        std::size_t e = all.find(',', b);
        if (e == std::string::npos) e = all.size();
        spec = all.substr(b, e - b);
        b = e + 1;
        if (spec.empty()) continue;
        std::vector<std::string> f;
        for (std::size_t p = 0; p <= spec.size();) {
            std::size_t q = spec.find(':', p);
            if (q == std::string::npos) q = spec.size();
            f.push_back(spec.substr(p, q - p));
            p = q + 1;
        }
        Fault x{};
        auto kv = [&](const std::string& field, const char* key) -> std::string {
            const std::string k = std::string(key) + "=";
            if (field.rfind(k, 0) != 0)
                throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: expected " + k + "... in '" + spec + "'");
            return field.substr(k.size());
        };
        const std::string& name = f[0];
        std::size_t used = 2;
        if (name == "hold_last_item") {
            if (f.size() < 2) throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: '" + spec + "' needs a rank");
            x.kind = Kind::HoldLastItem;
            x.rank = static_cast<int>(number(f[1], spec));
        } else if (name == "die_at") {
            if (f.size() < 2 || f[1].empty())
                throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: '" + spec + "' needs a step name");
            x.kind = Kind::DieAt;
            x.at = f[1];
            if (f.size() > 2) x.rank = static_cast<int>(number(kv(f[2], "rank"), spec)), used = 3;
        } else if (name == "corrupt_partial") {
            x.kind = Kind::CorruptPartial;
            used = 1;
            if (f.size() > 1) x.rank = static_cast<int>(number(kv(f[1], "rank"), spec)), used = 2;
        } else if (name == "die_rank" || name == "slow_rank") {
            if (f.size() < 3) throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: '" + spec + "' needs rank and value");
            x.kind = name == "die_rank" ? Kind::DieRank : Kind::SlowRank;
            x.rank = static_cast<int>(number(f[1], spec));
            x.n = number(kv(f[2], name == "die_rank" ? "after_items" : "ms"), spec);
            used = 3;
        } else {
            if (name == "short_write") x.kind = Kind::ShortWrite;
            else if (name == "short_read") x.kind = Kind::ShortRead;
            else if (name == "eio_write") x.kind = Kind::EioWrite;
            else if (name == "enospc") x.kind = Kind::Enospc;
            else if (name == "eio_read") x.kind = Kind::EioRead;
            else if (name == "truncate_input") x.kind = Kind::TruncateInput;
            else if (name == "statvfs_free") x.kind = Kind::StatvfsFree;
            else throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: unknown fault '" + name + "'");
            if (f.size() < 2) throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: '" + spec + "' needs N");
            x.n = number(f[1], spec);
            if (f.size() > 2) x.rank = static_cast<int>(number(kv(f[2], "rank"), spec)), used = 3;
        }
        if (f.size() > used) throw core::Error(core::ErrorKind::Usage, "", "", "SHARDFORGE_FAULT: trailing fields in '" + spec + "'");
        out.push_back(x);
    }
    return out;
}

const std::vector<Fault>& faults() {
    static const std::vector<Fault> list = [] {
        const std::string env = core::env("SHARDFORGE_FAULT");
        return env.empty() ? std::vector<Fault>{} : parse(env.c_str());
    }();
    return list;
}

bool mine(const Fault& f) { return f.rank < 0 || f.rank == g_rank.load(std::memory_order_relaxed); }

}  // namespace

void set_rank(int rank) {
    g_rank = rank;
    (void)faults();  // a malformed SHARDFORGE_FAULT fails here, before any output exists
}

int before_pwrite(std::size_t& len) {
    if (faults().empty()) return 0;
    const long k = ++g_writes;
    for (const auto& f : faults()) {
        if (!mine(f) || f.n != k) continue;
        if (f.kind == Kind::ShortWrite && len > 1) len /= 2;
        if (f.kind == Kind::EioWrite) return EIO;
        if (f.kind == Kind::Enospc) return ENOSPC;
    }
    return 0;
}

int before_pread(std::size_t& len) {
    if (faults().empty()) return 0;
    const long k = ++g_reads;
    for (const auto& f : faults()) {
        if (!mine(f) || f.n != k) continue;
        if (f.kind == Kind::ShortRead && len > 1) len /= 2;
        if (f.kind == Kind::EioRead) return EIO;
        if (f.kind == Kind::TruncateInput) return -1;
    }
    return 0;
}

bool free_space_override(unsigned long long& bytes) {
    for (const auto& f : faults())
        if (f.kind == Kind::StatvfsFree && mine(f)) {
            bytes = static_cast<unsigned long long>(f.n);
            return true;
        }
    return false;
}

void before_item() {
    for (const auto& f : faults())
        if (f.kind == Kind::SlowRank && mine(f)) std::this_thread::sleep_for(std::chrono::milliseconds(f.n));
}

void before_last_item() {
    for (const auto& f : faults())
        if (f.kind == Kind::HoldLastItem && mine(f)) {
            const std::string path = core::env("SHARDFORGE_FAULT_HOLD_FILE");
            for (int i = 0; !path.empty() && i < 6000; ++i) {
                if (std::FILE* fp = std::fopen(path.c_str(), "r")) {
                    std::fclose(fp);
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
        }
}

void after_item() {
    if (faults().empty()) return;
    const long k = ++g_items;
    for (const auto& f : faults())
        if (f.kind == Kind::DieRank && mine(f) && k >= f.n) {
            std::fprintf(stderr, "shardforge: SHARDFORGE_FAULT: rank %d dies after %ld items\n", g_rank.load(), k);
            std::_Exit(86);
        }
}

void point(const char* name, long index) {
    if (faults().empty()) return;
    const std::string at = index < 0 ? std::string(name) : core::cat(name, ".", index);
    for (const auto& f : faults())
        if (f.kind == Kind::DieAt && mine(f) && f.at == at) {
            std::fprintf(stderr, "shardforge: SHARDFORGE_FAULT: rank %d dies at %s\n", g_rank.load(), at.c_str());
            std::fflush(stderr);
            std::raise(SIGKILL);
        }
}

bool corrupt_partial() {
    for (const auto& f : faults())
        if (f.kind == Kind::CorruptPartial && mine(f)) return true;
    return false;
}

}  // namespace shardforge::exec::fault
