// Resume journal and state (see journal.hpp for the on-disk layout).
#include "journal.hpp"

#include "fault.hpp"
#include "io.hpp"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace shardforge::exec::resume {
namespace {

constexpr char record_magic[4] = {'S', 'F', 'J', '1'};
constexpr std::size_t record_overhead = 4 + 4 + 8;

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

json input_identities(const plan::Plan& p) {
    json a = json::array();
    auto add = [&](const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0)
            throw core::Error(core::ErrorKind::Io, path, "", core::cat("cannot stat: ", std::strerror(errno)));
        const std::int64_t mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
        a.push_back({{"path", path}, {"size", static_cast<std::uint64_t>(st.st_size)}, {"mtime_ns", mtime_ns}});
    };
    for (const auto& f : p.input_files) add(f);
    for (const auto& f : p.adapter_files) add(f);
    return a;
}

// Raw writes (not pwrite_all): the test-only fault hook counts output data writes only.
void write_file_durably(const std::string& path, const std::string& content) {
    const std::string tmp = path + ".tmp";
    {
        UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
        std::size_t done = 0;
        while (fd && done < content.size()) {
            const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            done += static_cast<std::size_t>(n);
        }
        if (!fd || done != content.size() || ::fsync(fd.get()) != 0)
            throw core::Error(core::ErrorKind::Io, tmp, "", core::cat("cannot write: ", std::strerror(errno)));
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw core::Error(core::ErrorKind::Io, path, "", "cannot rename: " + ec.message());
    UniqueFd dir(::open(fs::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) ::fsync(dir.get());
}

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

}  // namespace

Digest from_hex(const std::string& s) {
    Digest d{};
    if (s.size() != 64) throw core::Error(core::ErrorKind::BadInput, "", "", "journal: bad digest");
    for (std::size_t i = 0; i < 32; ++i) d[i] = static_cast<std::uint8_t>(std::stoul(s.substr(2 * i, 2), nullptr, 16));
    return d;
}

Digest sha256(std::span<const std::byte> b) {
    Sha256 h;
    h.update(b);
    return h.final();
}

std::string encode_record(const UnitRecord& r) {
    json e = json::array();
    for (const auto& x : r.emits)
        e.push_back({{"h", to_hex(x.sha)}, {"n", x.nan_count}, {"qe", x.q_err2}, {"qr", x.q_ref2}});
    const std::string payload =
        json{{"u", r.unit}, {"r", r.rank}, {"t", r.seconds}, {"de", r.dw2}, {"dw", r.w2}, {"e", e}}.dump();
    std::string out(record_magic, 4);
    const auto n = static_cast<std::uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
    out += payload;
    const Digest d = sha256(std::as_bytes(std::span(payload.data(), payload.size())));
    out.append(reinterpret_cast<const char*>(d.data()), 8);
    return out;
}

std::vector<UnitRecord> decode_records(std::span<const std::byte> data, std::size_t& valid_bytes) {
    std::vector<UnitRecord> out;
    std::size_t pos = 0;
    valid_bytes = 0;
    while (data.size() - pos >= record_overhead) {
        if (std::memcmp(data.data() + pos, record_magic, 4) != 0) break;
        std::uint32_t n = 0;
        for (int i = 0; i < 4; ++i) n |= static_cast<std::uint32_t>(data[pos + 4 + i]) << (8 * i);
        if (n > data.size() - pos - record_overhead) break;
        const auto payload = data.subspan(pos + 8, n);
        const Digest d = sha256(payload);
        if (std::memcmp(d.data(), data.data() + pos + 8 + n, 8) != 0) break;
        try {
            const json j = json::parse(reinterpret_cast<const char*>(payload.data()),
                                       reinterpret_cast<const char*>(payload.data()) + payload.size());
            UnitRecord r;
            r.unit = j.at("u").get<std::uint32_t>();
            r.rank = j.at("r").get<int>();
            r.seconds = j.at("t").get<double>();
            r.dw2 = j.at("de").get<double>();
            r.w2 = j.at("dw").get<double>();
            for (const auto& x : j.at("e")) {
                EmitFacts f;
                f.sha = from_hex(x.at("h").get<std::string>());
                f.nan_count = x.at("n").get<std::uint64_t>();
                f.q_err2 = x.at("qe").get<double>();
                f.q_ref2 = x.at("qr").get<double>();
                r.emits.push_back(f);
            }
            out.push_back(std::move(r));
        } catch (const std::exception&) {
            break;  // a checksummed but unparsable record: not ours; stop trusting the file here
        }
        pos += record_overhead + n;
        valid_bytes = pos;
    }
    return out;
}

std::string resume_dir(const plan::Plan& p) { return (fs::path(p.out_dir) / ".shardforge-resume").string(); }

std::string plan_digest(const plan::Plan& p) {
    // What fixes the output bytes and the units: not the sizing figures that follow the rank/thread count (threads,
    // gather window, memory estimates, scheduling cost) — a resume may use another rank count.
    const std::string cbor = plan::to_json(p);
    json j = json::from_cbor(std::vector<std::uint8_t>(cbor.begin(), cbor.end()));
    for (const char* k : {"threads", "gather_window", "peak_rank_bytes", "peak_item_bytes", "max_memory_per_rank", "notes"})
        j.erase(k);
    for (auto& it : j.at("items")) it.erase("cost");
    const std::string canon = j.dump();
    return to_hex(sha256(std::as_bytes(std::span(canon.data(), canon.size()))));
}

std::vector<Range> unit_ranges(const plan::Plan& p, const plan::Unit& u) {
    const plan::Item& it = p.items[u.item];
    std::vector<Range> out;
    for (const auto& e : it.emits) {  // an emit whose window the unit misses: an empty range
        const plan::EmitPart part = plan::emit_part(it, e, u.row_begin, u.row_end);
        out.push_back({e.file, e.offset + part.offset, part.nbytes});
    }
    return out;
}

int mismatched_emit(const plan::Plan& p, const plan::Unit& u, const UnitRecord& r) {
    const std::vector<Range> ranges = unit_ranges(p, u);
    if (r.emits.size() != ranges.size()) return 0;
    std::vector<std::byte> buf;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const Range& e = ranges[i];
        const int bad = static_cast<int>(i);
        const std::string path = (fs::path(p.out_dir) / (p.files[e.file].name + ".partial")).string();
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd) return bad;
        buf.resize(e.nbytes);
        const ssize_t n = ::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(e.offset));
        if (n != static_cast<ssize_t>(buf.size())) return bad;
        if (sha256(buf) != r.emits[i].sha) return bad;
    }
    return -1;
}

bool emits_match(const plan::Plan& p, const plan::Unit& u, const UnitRecord& r) { return mismatched_emit(p, u, r) < 0; }

void write_phase(const plan::Plan& p, const std::string& phase) {
    const json j = {{"phase", phase}, {"plan_sha256", plan_digest(p)}};
    write_file_durably((fs::path(resume_dir(p)) / "finish.json").string(), j.dump() + "\n");
}

std::string read_phase(const plan::Plan& p) {
    const json j = json::parse(read_all((fs::path(resume_dir(p)) / "finish.json").string()), nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("plan_sha256", std::string()) != plan_digest(p)) return "";
    return j.value("phase", std::string());
}

void write_state(const plan::Plan& p) {
    const std::string dir = resume_dir(p);
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::create_directories(dir, ec);
    if (ec) throw core::Error(core::ErrorKind::Io, dir, "", "cannot create: " + ec.message());
    const json st = {{"version", 1}, {"plan_sha256", plan_digest(p)}, {"inputs", input_identities(p)}};
    write_file_durably((fs::path(dir) / "state.json").string(), st.dump(1) + "\n");
}

std::map<std::uint32_t, UnitRecord> load(const plan::Plan& p, bool& found) {
    std::map<std::uint32_t, UnitRecord> units;
    const fs::path dir = resume_dir(p);
    const fs::path state_path = dir / "state.json";
    found = fs::exists(state_path);
    if (!found) return units;
    json st;
    try {
        st = json::parse(read_all(state_path.string()));
    } catch (const std::exception&) {
        throw core::Error(core::ErrorKind::BadInput, state_path.string(), "", "--resume: unreadable resume state");
    }
    const json now = input_identities(p);
    const json& then = st.at("inputs");
    for (std::size_t i = 0; i < now.size(); ++i) {
        const bool same = i < then.size() && then[i].at("path") == now[i].at("path") &&
                          then[i].at("size") == now[i].at("size") && then[i].at("mtime_ns") == now[i].at("mtime_ns");
        if (!same)
            throw core::Error(core::ErrorKind::Usage, now[i].at("path").get<std::string>(), "",
                              "--resume: this input changed since the interrupted run (size or modification time); "
                              "start over without --resume (with --overwrite)");
    }
    if (then.size() != now.size() || st.at("plan_sha256").get<std::string>() != plan_digest(p))
        throw core::Error(core::ErrorKind::Usage, p.out_dir, "",
                          "--resume: the options or inputs differ from the interrupted run (plan digest changed); "
                          "rerun with the same options, or start over without --resume (with --overwrite)");
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind("journal.rank", 0) != 0) continue;
        const std::string data = read_all(entry.path().string());
        std::size_t valid = 0;
        auto recs = decode_records(std::as_bytes(std::span(data.data(), data.size())), valid);
        if (valid < data.size()) {
            core::log::warn(core::cat("resume: ", entry.path().string(), ": ignoring ", data.size() - valid,
                                      " bytes of an incomplete journal record"));
            if (::truncate(entry.path().c_str(), static_cast<off_t>(valid)) != 0)
                throw core::Error(core::ErrorKind::Io, entry.path().string(), "",
                                  core::cat("cannot truncate: ", std::strerror(errno)));
        }
        const std::size_t n_units = plan::units(p).size();
        for (auto& r : recs)
            if (r.unit < n_units) units[r.unit] = std::move(r);
    }
    return units;
}

void remove_dir(const plan::Plan& p) {
    // In an order that leaves a usable state at every instant: the journals and the phase record first (a resumed
    // run then recomputes units instead of skipping them), state.json last (without it --resume starts afresh).
    const fs::path dir = resume_dir(p);
    std::error_code ec;
    std::vector<fs::path> journals;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename() != "state.json") journals.push_back(e.path());
    std::sort(journals.begin(), journals.end());
    for (std::size_t i = 0; i < journals.size(); ++i) {
        fs::remove_all(journals[i], ec);
        fault::point("unjournal", static_cast<long>(i));
    }
    fs::remove(dir / "state.json", ec);
    fs::remove(dir, ec);
    if (UniqueFd d(::open(p.out_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d) ::fsync(d.get());
}

Journal::Journal(const plan::Plan& p, const std::vector<plan::Unit>& units, int rank, bool enabled)
    : p_(p), units_(units), enabled_(enabled), path_((fs::path(resume_dir(p)) / core::cat("journal.rank", rank)).string()),
      last_flush_s_(now_s()) {}

void Journal::add(UnitRecord r) {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    pending_.push_back(std::move(r));
}

bool Journal::due() const {
    std::lock_guard lock(mu_);
    return !pending_.empty() && (pending_.size() >= 256 || now_s() - last_flush_s_ >= 0.5);
}

void Journal::flush() {
    if (!enabled_) return;
    std::lock_guard lock(mu_);
    last_flush_s_ = now_s();
    if (pending_.empty()) return;
    // 1. The bytes the records describe are durable first ...
    std::set<std::uint32_t> files;
    for (const auto& r : pending_)
        for (const auto& e : p_.items[units_[r.unit].item].emits) files.insert(e.file);
    for (const std::uint32_t f : files) {
        const std::string path = (fs::path(p_.out_dir) / (p_.files[f].name + ".partial")).string();
        UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd || ::fdatasync(fd.get()) != 0)
            throw core::Error(core::ErrorKind::Io, path, "", core::cat("fdatasync failed: ", std::strerror(errno)));
    }
    // 2. ... then the records, appended in one write and synced.
    std::string buf;
    for (const auto& r : pending_) buf += encode_record(r);
    UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
    if (!fd) throw core::Error(core::ErrorKind::Io, path_, "", core::cat("cannot open journal: ", std::strerror(errno)));
    std::size_t done = 0;
    while (done < buf.size()) {
        const ssize_t n = ::write(fd.get(), buf.data() + done, buf.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw core::Error(core::ErrorKind::Io, path_, "", core::cat("journal write failed: ", std::strerror(errno)));
        done += static_cast<std::size_t>(n);
    }
    if (::fdatasync(fd.get()) != 0)
        throw core::Error(core::ErrorKind::Io, path_, "", core::cat("fdatasync failed: ", std::strerror(errno)));
    n_journaled_ += pending_.size();
    pending_.clear();
}

}  // namespace shardforge::exec::resume

namespace shardforge::exec {
std::string plan_digest(const plan::Plan& p) { return resume::plan_digest(p); }
}  // namespace shardforge::exec
