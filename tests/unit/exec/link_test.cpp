// The link layer (src/exec/link.hpp) on the CPU, with a fake host communicator and fake payload transports in
// place of MPI and NCCL: each message's header leaves before its payload is posted; a gather completes when a
// posted payload blocks until the receiver posts its receive (NCCL's ncclSend is "blocking for the GPU" until the
// peer's ncclRecv); and the rule that keeps NCCL off GPUs shared by two ranks.
#include "exec/link.hpp"
#include "fake_comm.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sf = shardforge;
namespace lk = sf::exec::link;
using sf::core::Comm;

namespace {

std::vector<std::byte> bytes_of(const std::string& s) {
    std::vector<std::byte> v(s.size());
    std::memcpy(v.data(), s.data(), s.size());
    return v;
}
std::string string_of(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }
std::vector<std::byte> header_of(std::uint64_t n) {
    std::vector<std::byte> h(sizeof n);
    std::memcpy(h.data(), &n, sizeof n);
    return h;
}

// ---------------------------------------------------------------- one rank, every call recorded in order

struct Log {
    std::vector<std::string> events;
};

// Host communicator of rank `me`: sends are recorded; recv_any hands out scripted (source, bytes) messages.
class RecordingHost final : public sf_test::LocalCollectives {
public:
    RecordingHost(int me, Log& log) : me_(me), log_(log) {}
    std::deque<std::pair<int, std::vector<std::byte>>> inbox;

    int rank() const override { return me_; }
    int size() const override { return 3; }
    Request isend(std::span<const std::byte> data, int dest, int tag) override {
        std::uint64_t n = 0;
        EXPECT_EQ(data.size(), sizeof n) << "a link header is the 8-byte payload size";
        std::memcpy(&n, data.data(), std::min(sizeof n, data.size()));
        log_.events.push_back(sf::core::cat("header ", n, " to ", dest, " tag ", tag));
        return next_++;
    }
    void wait(Request r) override { log_.events.push_back(sf::core::cat("header wait ", r)); }
    int recv_any(std::vector<std::byte>& out, int tag) override {
        log_.events.push_back(sf::core::cat("header recv tag ", tag));
        if (inbox.empty()) throw std::runtime_error("no scripted message");
        out = inbox.front().second;
        const int src = inbox.front().first;
        inbox.pop_front();
        return src;
    }

private:
    int me_;
    Log& log_;
    Request next_ = 1;
};

class RecordingTransport final : public lk::Transport {
public:
    explicit RecordingTransport(Log& log, std::map<int, std::string> incoming = {})
        : log_(log), incoming_(std::move(incoming)) {}
    bool fail_stage = false;

    Handle stage(std::span<const std::byte> data) override {
        if (fail_stage) throw sf::core::Error(sf::core::ErrorKind::Io, "", "", "out of device memory");
        const Handle h = next_++;
        staged_[h] = string_of(data);
        log_.events.push_back(sf::core::cat("stage ", staged_[h]));
        return h;
    }
    void post(Handle h, int dest) override {
        log_.events.push_back(sf::core::cat("post ", staged_.at(h), " to ", dest));
    }
    void finish(Handle h) override { log_.events.push_back(sf::core::cat("finish ", staged_.at(h))); }
    void recv(std::span<std::byte> out, int src) override {
        log_.events.push_back(sf::core::cat("recv ", out.size(), " from ", src));
        const std::string& s = incoming_.at(src);
        ASSERT_EQ(s.size(), out.size());
        std::memcpy(out.data(), s.data(), s.size());
    }
    std::string name() const override { return "fake"; }

private:
    Log& log_;
    std::map<int, std::string> incoming_;
    Handle next_ = 1;
    std::map<Handle, std::string> staged_;
};

TEST(LinkComm, SendsEachHeaderBeforeItsPayload) {
    Log log;
    auto comm = lk::make_link_comm(std::make_unique<RecordingHost>(1, log), std::make_unique<RecordingTransport>(log));
    const auto a = bytes_of("hello"), b = bytes_of("rowblock");
    const Comm::Request ra = comm->isend(a, 0, 7);
    const Comm::Request rb = comm->isend(b, 0, 7);
    comm->wait(ra);
    comm->wait(rb);
    const std::vector<std::string> expected = {
        "stage hello",    "header 5 to 0 tag 7", "header wait 1", "post hello to 0",
        "stage rowblock", "header 8 to 0 tag 7", "header wait 2", "post rowblock to 0",
        "finish hello",   "finish rowblock",
    };
    EXPECT_EQ(log.events, expected);
    EXPECT_EQ(comm->backend(), "fake");
}

TEST(LinkComm, EmptyMessageIsAHeaderOnly) {
    Log log;
    auto comm = lk::make_link_comm(std::make_unique<RecordingHost>(2, log), std::make_unique<RecordingTransport>(log));
    comm->wait(comm->isend({}, 0, 3));
    const std::vector<std::string> expected = {"header 0 to 0 tag 3", "header wait 1"};
    EXPECT_EQ(log.events, expected);
}

TEST(LinkComm, StagingFailureSendsNoHeader) {
    Log log;
    auto t = std::make_unique<RecordingTransport>(log);
    t->fail_stage = true;
    auto comm = lk::make_link_comm(std::make_unique<RecordingHost>(1, log), std::move(t));
    const auto a = bytes_of("x");
    EXPECT_THROW((void)comm->isend(a, 0, 7), sf::core::Error);
    EXPECT_TRUE(log.events.empty()) << "first event: " << log.events.front();
}

TEST(LinkComm, ReceivesThePayloadFromTheHeadersSender) {
    Log log;
    auto host = std::make_unique<RecordingHost>(0, log);
    host->inbox.emplace_back(2, header_of(3));
    host->inbox.emplace_back(1, header_of(0));
    auto comm = lk::make_link_comm(std::move(host),
                                   std::make_unique<RecordingTransport>(log, std::map<int, std::string>{{2, "abc"}}));
    std::vector<std::byte> out;
    EXPECT_EQ(comm->recv_any(out, 9), 2);
    EXPECT_EQ(string_of(out), "abc");
    EXPECT_EQ(comm->recv_any(out, 9), 1);
    EXPECT_TRUE(out.empty());
    const std::vector<std::string> expected = {"header recv tag 9", "recv 3 from 2", "header recv tag 9"};
    EXPECT_EQ(log.events, expected);
}

TEST(LinkComm, RejectsAHeaderOfTheWrongSize) {
    Log log;
    auto host = std::make_unique<RecordingHost>(0, log);
    host->inbox.emplace_back(1, bytes_of("abc"));
    auto comm = lk::make_link_comm(std::move(host), std::make_unique<RecordingTransport>(log));
    std::vector<std::byte> out;
    try {
        (void)comm->recv_any(out, 9);
        FAIL() << "no error";
    } catch (const sf::core::Error& e) {
        EXPECT_EQ(e.kind(), sf::core::ErrorKind::Internal);
        EXPECT_NE(std::string(e.what()).find("header of 3 bytes from rank 1"), std::string::npos) << e.what();
    }
}

// ---------------------------------------------------------------- several ranks on threads, blocking sends

constexpr auto patience = std::chrono::seconds(5);  // a wait this long is a deadlock

// The network of n ranks: eager headers (MPI's small messages) and rendezvous payloads, which block the sender
// until the receiver has posted the matching receive and taken the bytes (the NCCL contract above).
struct Network {
    std::mutex mu;
    std::condition_variable cv;
    std::map<int, std::deque<std::pair<int, std::vector<std::byte>>>> headers;  // dest -> (src, bytes)
    std::map<std::pair<int, int>, std::deque<std::string>> offered;              // (src, dest) -> payloads

    template <class Pred>
    void wait_for(std::unique_lock<std::mutex>& lock, Pred pred, const std::string& what) {
        if (!cv.wait_for(lock, patience, pred)) throw std::runtime_error("deadlock: " + what);
    }
};

class NetHost final : public sf_test::LocalCollectives {
public:
    NetHost(Network& net, int me, int n) : net_(net), me_(me), n_(n) {}
    int rank() const override { return me_; }
    int size() const override { return n_; }
    Request isend(std::span<const std::byte> data, int dest, int) override {
        {
            std::lock_guard lock(net_.mu);
            net_.headers[dest].emplace_back(me_, std::vector<std::byte>(data.begin(), data.end()));
        }
        net_.cv.notify_all();
        return 1;
    }
    void wait(Request) override {}
    int recv_any(std::vector<std::byte>& out, int) override {
        std::unique_lock lock(net_.mu);
        net_.wait_for(lock, [&] { return !net_.headers[me_].empty(); },
                      sf::core::cat("rank ", me_, " waits for a header"));
        out = net_.headers[me_].front().second;
        const int src = net_.headers[me_].front().first;
        net_.headers[me_].pop_front();
        return src;
    }

private:
    Network& net_;
    int me_, n_;
};

class RendezvousTransport final : public lk::Transport {
public:
    RendezvousTransport(Network& net, int me) : net_(net), me_(me) {}
    Handle stage(std::span<const std::byte> data) override {
        staged_[next_] = string_of(data);
        return next_++;
    }
    void post(Handle h, int dest) override {
        std::unique_lock lock(net_.mu);
        auto& q = net_.offered[{me_, dest}];
        q.push_back(staged_.at(h));
        net_.cv.notify_all();
        net_.wait_for(lock, [&] { return q.empty(); },
                      sf::core::cat("rank ", me_, "'s payload send waits for rank ", dest, " to receive it"));
    }
    void finish(Handle h) override { staged_.erase(h); }
    void recv(std::span<std::byte> out, int src) override {
        std::unique_lock lock(net_.mu);
        auto& q = net_.offered[{src, me_}];
        net_.wait_for(lock, [&] { return !q.empty(); },
                      sf::core::cat("rank ", me_, " waits for rank ", src, "'s payload"));
        ASSERT_EQ(q.front().size(), out.size());
        std::memcpy(out.data(), q.front().data(), out.size());
        q.pop_front();
        net_.cv.notify_all();
    }
    std::string name() const override { return "rendezvous"; }

private:
    Network& net_;
    int me_;
    Handle next_ = 1;
    std::map<Handle, std::string> staged_;
};

TEST(LinkComm, GatherCompletesWhenPayloadSendsBlockUntilReceived) {
    constexpr int n_ranks = 4, n_msgs = 20;
    Network net;
    auto message = [](int rank, int i) {  // sizes differ per block
        return sf::core::cat("rank ", rank, " block ", i, std::string(static_cast<std::size_t>(i), '.'));
    };
    std::vector<std::string> errors(n_ranks);
    std::vector<std::vector<std::string>> got(n_ranks);  // at rank 0, by sender, in arrival order
    std::vector<std::thread> threads;
    for (int r = 0; r < n_ranks; ++r) {
        threads.emplace_back([&, r] {
            try {
                auto comm = lk::make_link_comm(std::make_unique<NetHost>(net, r, n_ranks),
                                                 std::make_unique<RendezvousTransport>(net, r));
                if (r == 0) {
                    std::vector<std::byte> buf;
                    for (int k = 0; k < (n_ranks - 1) * n_msgs; ++k) {
                        const int src = comm->recv_any(buf, 5);
                        got[static_cast<std::size_t>(src)].push_back(string_of(buf));
                    }
                } else {
                    std::vector<std::vector<std::byte>> keep;  // alive until wait()
                    std::vector<Comm::Request> reqs;
                    for (int i = 0; i < n_msgs; ++i) {
                        keep.push_back(bytes_of(message(r, i)));
                        reqs.push_back(comm->isend(keep.back(), 0, 5));
                    }
                    for (auto q : reqs) comm->wait(q);
                }
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(r)] = e.what();
                net.cv.notify_all();
            }
        });
    }
    for (auto& t : threads) t.join();
    for (int r = 0; r < n_ranks; ++r) EXPECT_EQ(errors[static_cast<std::size_t>(r)], "") << "rank " << r;
    for (int r = 1; r < n_ranks; ++r) {
        std::vector<std::string> expected;
        for (int i = 0; i < n_msgs; ++i) expected.push_back(message(r, i));
        EXPECT_EQ(got[static_cast<std::size_t>(r)], expected) << "blocks of rank " << r << " at rank 0";
    }
}

// ---------------------------------------------------------------- the shared-GPU rule

TEST(SharedDevice, EveryRankOnItsOwnGpuKeepsNccl) {
    EXPECT_EQ(lk::shared_device({"node1/0000:41:00.0", "node1/0000:61:00.0", "node2/0000:41:00.0"}), "");
    EXPECT_EQ(lk::shared_device({"node1/0000:41:00.0"}), "");
}

TEST(SharedDevice, TwoRanksOnOneGpuNameTheRanksAndTheGpu) {
    EXPECT_EQ(lk::shared_device({"node1/0000:41:00.0", "node1/0000:61:00.0", "node1/0000:41:00.0"}),
              "ranks 0 and 2 share GPU node1/0000:41:00.0");
}

TEST(SharedDevice, MoreRanksThanGpusOnANode) {
    // local rank mod device count: 4 ranks on a node with 2 GPUs; the first repeat found is rank 2 on rank 0's GPU.
    EXPECT_EQ(lk::shared_device({"n/0000:01:00.0", "n/0000:02:00.0", "n/0000:01:00.0", "n/0000:02:00.0"}),
              "ranks 0 and 2 share GPU n/0000:01:00.0");
    EXPECT_EQ(lk::shared_device({"n/0000:01:00.0", "n/0000:02:00.0", "n/0000:02:00.0", "n/0000:01:00.0"}),
              "ranks 1 and 2 share GPU n/0000:02:00.0");
}

}  // namespace
