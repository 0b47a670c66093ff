// Serial communicator and the error agreement protocol shared by every communicator (include/shardforge/comm.hpp).
#include <shardforge/comm.hpp>

#include <nlohmann/json.hpp>

namespace shardforge::core {
namespace {

class SerialComm final : public Comm {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void barrier() override {}
    void broadcast(std::string&, int) override {}
    std::uint64_t max(std::uint64_t local) override { return local; }
    std::uint64_t sum(std::uint64_t local) override { return local; }
    double max(double local) override { return local; }
    std::vector<std::string> gather(const std::string& local, int) override { return {local}; }
    Request isend(std::span<const std::byte>, int, int) override { throw no_peer(); }
    void wait(Request) override { throw no_peer(); }
    int recv_any(std::vector<std::byte>&, int) override { throw no_peer(); }
    std::string backend() const override { return "serial"; }

private:
    static Error no_peer() {
        return Error(ErrorKind::Internal, "", "", "point-to-point message on a one-process communicator");
    }
};

class DoneSum final : public Comm::SumRequest {
public:
    explicit DoneSum(std::vector<std::uint64_t> v) : v_(std::move(v)) {}
    bool test() override { return true; }
    const std::vector<std::uint64_t>& result() const override { return v_; }

private:
    std::vector<std::uint64_t> v_;
};

}  // namespace

std::unique_ptr<Comm::SumRequest> Comm::isum(const std::vector<std::uint64_t>& local) {
    std::vector<std::uint64_t> out(local.size());
    for (std::size_t i = 0; i < local.size(); ++i) out[i] = sum(local[i]);
    return std::make_unique<DoneSum>(std::move(out));
}

std::unique_ptr<Comm> make_serial_comm() { return std::make_unique<SerialComm>(); }

std::optional<Error> agree_on_error(Comm& comm, const std::optional<Error>& local) {
    // Lowest failing rank wins: everyone learns its rank with a max-reduce of (size - rank), then it broadcasts.
    const std::uint64_t n = static_cast<std::uint64_t>(comm.size());
    const std::uint64_t mine = local ? n - static_cast<std::uint64_t>(comm.rank()) : 0;
    const std::uint64_t best = comm.max(mine);
    if (best == 0) return std::nullopt;
    const int root = static_cast<int>(n - best);
    std::string msg;
    if (comm.rank() == root) {
        nlohmann::json j = {{"kind", static_cast<int>(local->kind())},
                            {"file", local->file()},
                            {"tensor", local->tensor()},
                            {"why", local->why()}};
        msg = j.dump();
    }
    comm.broadcast(msg, root);
    const auto j = nlohmann::json::parse(msg);
    std::string why = j.at("why").get<std::string>();
    if (n > 1 && comm.rank() != root) why += cat(" (on rank ", root, ")");
    return Error(static_cast<ErrorKind>(j.at("kind").get<int>()), j.at("file").get<std::string>(),
                       j.at("tensor").get<std::string>(), why);
}

}  // namespace shardforge::core
