// The MPI communicator: the only file that includes <mpi.h>.
#include <shardforge/exec.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstdlib>
#include <map>

namespace shardforge::exec {
namespace {

class MpiComm final : public Comm {
public:
    MpiComm() { MPI_Comm_dup(MPI_COMM_WORLD, &comm_); }
    ~MpiComm() override {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Comm_free(&comm_);
    }
    int rank() const override {
        int r = 0;
        MPI_Comm_rank(comm_, &r);
        return r;
    }
    int size() const override {
        int s = 1;
        MPI_Comm_size(comm_, &s);
        return s;
    }
    void barrier() override { MPI_Barrier(comm_); }
    void broadcast(std::string& bytes, int root) override {
        std::uint64_t n = bytes.size();
        MPI_Bcast(&n, 1, MPI_UINT64_T, root, comm_);
        bytes.resize(n);
        // MPI counts are int: send in chunks of at most 1 GiB.
        constexpr std::uint64_t chunk = 1ULL << 30;
        for (std::uint64_t off = 0; off < n; off += chunk) {
            const int len = static_cast<int>(std::min(chunk, n - off));
            MPI_Bcast(bytes.data() + off, len, MPI_BYTE, root, comm_);
        }
    }
    std::uint64_t max(std::uint64_t local) override {
        std::uint64_t out = 0;
        MPI_Allreduce(&local, &out, 1, MPI_UINT64_T, MPI_MAX, comm_);
        return out;
    }
    std::uint64_t sum(std::uint64_t local) override {
        std::uint64_t out = 0;
        MPI_Allreduce(&local, &out, 1, MPI_UINT64_T, MPI_SUM, comm_);
        return out;
    }
    double max(double local) override {
        double out = 0;
        MPI_Allreduce(&local, &out, 1, MPI_DOUBLE, MPI_MAX, comm_);
        return out;
    }
    std::vector<std::string> gather(const std::string& local, int root) override {
        const int n = size();
        int len = static_cast<int>(local.size());
        std::vector<int> lens(n), displs(n);
        MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, comm_);
        std::string all;
        if (rank() == root) {
            int total = 0;
            for (int i = 0; i < n; ++i) {
                displs[i] = total;
                total += lens[i];
            }
            all.resize(total);
        }
        MPI_Gatherv(local.data(), len, MPI_BYTE, all.data(), lens.data(), displs.data(), MPI_BYTE, root, comm_);
        std::vector<std::string> out;
        if (rank() == root)
            for (int i = 0; i < n; ++i) out.push_back(all.substr(displs[i], lens[i]));
        return out;
    }

    Request isend(std::span<const std::byte> data, int dest, int tag) override {
        if (data.size() > static_cast<std::size_t>(INT32_MAX))
            throw core::Error(core::ErrorKind::Internal, "", "", "message larger than 2 GiB");
        MPI_Request r = MPI_REQUEST_NULL;
        MPI_Isend(data.data(), static_cast<int>(data.size()), MPI_BYTE, dest, tag, comm_, &r);
        const Request id = next_++;
        pending_.emplace(id, r);
        return id;
    }
    void wait(Request id) override {
        const auto it = pending_.find(id);
        if (it == pending_.end()) return;
        MPI_Wait(&it->second, MPI_STATUS_IGNORE);
        pending_.erase(it);
    }
    int recv_any(std::vector<std::byte>& out, int tag) override {
        MPI_Message msg = MPI_MESSAGE_NULL;
        MPI_Status st;
        MPI_Mprobe(MPI_ANY_SOURCE, tag, comm_, &msg, &st);
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        out.resize(static_cast<std::size_t>(count));
        MPI_Mrecv(out.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
        return st.MPI_SOURCE;
    }

private:
    MPI_Comm comm_ = MPI_COMM_NULL;
    Request next_ = 1;
    std::map<Request, MPI_Request> pending_;
};

}  // namespace

MpiSession::MpiSession(int& argc, char**& argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
}

MpiSession::~MpiSession() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

void MpiSession::abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
}

std::unique_ptr<Comm> make_mpi_comm() { return std::make_unique<MpiComm>(); }

}  // namespace shardforge::exec
