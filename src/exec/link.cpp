// The link layer (link.hpp): header-first point-to-point messages over a host communicator and a payload
// transport, and the shared-GPU rule that decides whether NCCL can be the transport.
#include "link.hpp"

#include <array>
#include <cstring>
#include <map>

namespace shardforge::exec::link {
namespace {

class LinkComm final : public Comm {
public:
    LinkComm(std::unique_ptr<Comm> host, std::unique_ptr<Transport> transport)
        : host_(std::move(host)), transport_(std::move(transport)) {}

    int rank() const override { return host_->rank(); }
    int size() const override { return host_->size(); }
    void barrier() override { host_->barrier(); }
    void broadcast(std::string& bytes, int root) override { host_->broadcast(bytes, root); }
    std::uint64_t max(std::uint64_t local) override { return host_->max(local); }
    std::uint64_t sum(std::uint64_t local) override { return host_->sum(local); }
    double max(double local) override { return host_->max(local); }
    std::vector<std::string> gather(const std::string& local, int root) override { return host_->gather(local, root); }
    std::unique_ptr<SumRequest> isum(const std::vector<std::uint64_t>& local) override { return host_->isum(local); }
    std::string backend() const override { return transport_->name(); }

    // 1. Stage the payload: local work only, so a failure throws before the receiver has heard of the message.
    // 2. The header, waited for: once it has left, the receiver can take it without another call from this rank
    //    (MPI guarantees a posted send's progress only while its process keeps calling MPI, and step 3 may block
    //    outside MPI).
    // 3. Post the payload, which may block until the receiver, holding the header, posts its receive.
    // Messages from one sender keep their order: headers do (MPI's non-overtaking rule) and the receiver takes
    // each payload right after its header.
    Request isend(std::span<const std::byte> data, int dest, int tag) override {
        Pending pd;
        pd.has_payload = !data.empty();
        if (pd.has_payload) pd.handle = transport_->stage(data);
        try {
            const std::uint64_t n = data.size();
            std::array<std::byte, sizeof n> header{};
            std::memcpy(header.data(), &n, sizeof n);
            host_->wait(host_->isend(header, dest, tag));
            if (pd.has_payload) transport_->post(pd.handle, dest);
        } catch (...) {
            if (pd.has_payload) finish_quietly(pd.handle);
            throw;
        }
        const Request id = next_++;
        pending_.emplace(id, pd);
        return id;
    }
    void wait(Request id) override {
        const auto it = pending_.find(id);
        if (it == pending_.end()) return;
        const Pending pd = it->second;
        pending_.erase(it);
        if (pd.has_payload) transport_->finish(pd.handle);
    }
    int recv_any(std::vector<std::byte>& out, int tag) override {
        std::vector<std::byte> header;
        const int src = host_->recv_any(header, tag);
        std::uint64_t n = 0;
        if (header.size() != sizeof n)
            throw core::Error(core::ErrorKind::Internal, "", "",
                              core::cat(transport_->name(), " link: header of ", header.size(), " bytes from rank ",
                                        src, " (expected ", sizeof n, ")"));
        std::memcpy(&n, header.data(), sizeof n);
        out.resize(static_cast<std::size_t>(n));
        if (n > 0) transport_->recv(out, src);
        return src;
    }

private:
    struct Pending {
        Transport::Handle handle = 0;
        bool has_payload = false;
    };
    void finish_quietly(Transport::Handle h) noexcept {
        try {
            transport_->finish(h);
        } catch (...) {  // already failing: the first error is the one reported
        }
    }

    std::unique_ptr<Comm> host_;
    std::unique_ptr<Transport> transport_;  // destroyed before host_
    Request next_ = 1;
    std::map<Request, Pending> pending_;
};

}  // namespace

std::unique_ptr<Comm> make_link_comm(std::unique_ptr<Comm> host, std::unique_ptr<Transport> transport) {
    return std::make_unique<LinkComm>(std::move(host), std::move(transport));
}

std::string shared_device(const std::vector<std::string>& device_ids) {
    std::map<std::string, std::size_t> first;  // device -> lowest rank on it
    for (std::size_t r = 0; r < device_ids.size(); ++r) {
        const auto [it, fresh] = first.emplace(device_ids[r], r);
        if (!fresh) return core::cat("ranks ", it->second, " and ", r, " share GPU ", device_ids[r]);
    }
    return "";
}

}  // namespace shardforge::exec::link
