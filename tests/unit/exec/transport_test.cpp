// The gather transport (src/exec/transport.hpp) against a fake communicator: what a sender puts on the wire, and
// what rank 0 does with each kind of message (chunk, journal record, end of stream, garbage).
#include "exec/transport.hpp"
#include "fake_comm.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <deque>
#include <string>
#include <utility>
#include <vector>

namespace sf = shardforge;
using sf::exec::ChunkHeader;

namespace {

// Point-to-point only: isend records the message, recv_any hands out the queued inbox in order.
class FakeComm final : public sf_test::LocalCollectives {
public:
    explicit FakeComm(int size) : size_(size) {}
    int rank() const override { return 0; }
    int size() const override { return size_; }
    Request isend(std::span<const std::byte> data, int dest, int tag) override {
        sent.push_back({dest, tag, std::vector<std::byte>(data.begin(), data.end())});
        return sent.size();
    }
    void wait(Request r) override { waited.push_back(r); }
    int recv_any(std::vector<std::byte>& out, int tag) override {
        EXPECT_EQ(tag, sf::exec::kGatherTag);
        if (inbox.empty()) throw std::runtime_error("recv_any on an empty inbox: the receiver did not stop");
        out = std::move(inbox.front());
        inbox.pop_front();
        return 1;
    }
    struct Sent {
        int dest, tag;
        std::vector<std::byte> bytes;
    };
    std::vector<Sent> sent;
    std::vector<Request> waited;
    std::deque<std::vector<std::byte>> inbox;

private:
    int size_;
};

std::vector<std::byte> bytes_of(const std::string& s) {
    const auto b = std::as_bytes(std::span(s.data(), s.size()));
    return {b.begin(), b.end()};
}

ChunkHeader header_of(const std::vector<std::byte>& m) {
    ChunkHeader h;
    EXPECT_GE(m.size(), sizeof h);
    std::memcpy(&h, m.data(), sizeof h);
    return h;
}

struct Written {
    std::uint32_t file;
    std::uint64_t offset;
    std::string bytes;
};

sf::exec::Receiver recording(std::vector<Written>& writes, std::vector<std::string>& journals) {
    sf::exec::Receiver r;
    r.write = [&writes](std::uint32_t f, std::uint64_t off, std::span<const std::byte> b) {
        writes.push_back({f, off, std::string(reinterpret_cast<const char*>(b.data()), b.size())});
    };
    r.journal = [&journals](std::span<const std::byte> b) {
        journals.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
    };
    return r;
}

}  // namespace

TEST(Transport, ChunkIsA16ByteHeaderThenTheBytes) {
    const auto m = sf::exec::make_chunk(3, 0x1122334455ull, bytes_of("abc"));
    ASSERT_EQ(m.size(), 16u + 3u);
    const ChunkHeader h = header_of(m);
    EXPECT_EQ(h.file, 3u);
    EXPECT_EQ(h.reserved, 0u);
    EXPECT_EQ(h.offset, 0x1122334455ull);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()) + 16, 3), "abc");
}

TEST(Transport, SenderStreamsTheQueueInOrderThenEndOfStream) {
    FakeComm comm(2);
    sf::exec::QueueSink q(8);
    q.write(1, 100, bytes_of("first"), "t1");
    q.write(0, 7, bytes_of("second"), "t2");
    q.close();
    sf::exec::send_chunks(comm, q, 1);
    ASSERT_EQ(comm.sent.size(), 3u);
    for (const auto& s : comm.sent) {
        EXPECT_EQ(s.dest, 0);
        EXPECT_EQ(s.tag, sf::exec::kGatherTag);
    }
    EXPECT_EQ(header_of(comm.sent[0].bytes).file, 1u);
    EXPECT_EQ(header_of(comm.sent[0].bytes).offset, 100u);
    EXPECT_EQ(header_of(comm.sent[1].bytes).file, 0u);
    EXPECT_EQ(header_of(comm.sent[1].bytes).offset, 7u);
    EXPECT_EQ(header_of(comm.sent[2].bytes).file, sf::exec::kEndOfStream);
    EXPECT_EQ(comm.sent[2].bytes.size(), sizeof(ChunkHeader));
    // Window 1: every send is waited for before the next one and the marker.
    EXPECT_EQ(comm.waited.size(), 3u);
}

TEST(Transport, ReceiverWritesChunksAndJournalsRecordsUntilEverySenderEnded) {
    FakeComm comm(3);  // two senders
    comm.inbox.push_back(sf::exec::make_chunk(2, 40, bytes_of("xyz")));
    comm.inbox.push_back(sf::exec::make_chunk(sf::exec::kJournalRecord, 0, bytes_of("rec")));
    comm.inbox.push_back(sf::exec::make_chunk(sf::exec::kEndOfStream, 0, {}));
    comm.inbox.push_back(sf::exec::make_chunk(0, 8, bytes_of("w")));
    comm.inbox.push_back(sf::exec::make_chunk(sf::exec::kEndOfStream, 0, {}));
    std::vector<Written> writes;
    std::vector<std::string> journals;
    const auto err = sf::exec::receive_chunks(comm, 3, recording(writes, journals));
    EXPECT_FALSE(err.has_value());
    EXPECT_TRUE(comm.inbox.empty());
    ASSERT_EQ(writes.size(), 2u);
    EXPECT_EQ(writes[0].file, 2u);
    EXPECT_EQ(writes[0].offset, 40u);
    EXPECT_EQ(writes[0].bytes, "xyz");
    EXPECT_EQ(writes[1].file, 0u);
    EXPECT_EQ(writes[1].bytes, "w");
    ASSERT_EQ(journals.size(), 1u);
    EXPECT_EQ(journals[0], "rec");
}

TEST(Transport, ReceiverReportsABadFileIndexAndKeepsDrainingWithoutWriting) {
    FakeComm comm(2);
    comm.inbox.push_back(sf::exec::make_chunk(5, 0, bytes_of("bad")));   // only 3 files
    comm.inbox.push_back(sf::exec::make_chunk(1, 0, bytes_of("late")));  // after the error: drained, not written
    comm.inbox.push_back(sf::exec::make_chunk(sf::exec::kEndOfStream, 0, {}));
    std::vector<Written> writes;
    std::vector<std::string> journals;
    const auto err = sf::exec::receive_chunks(comm, 3, recording(writes, journals));
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->kind(), sf::core::ErrorKind::Internal);
    EXPECT_NE(std::string(err->what()).find("bad gather file index"), std::string::npos) << err->what();
    EXPECT_TRUE(writes.empty());
    EXPECT_TRUE(comm.inbox.empty());
}

TEST(Transport, ReceiverReportsAShortMessage) {
    FakeComm comm(2);
    comm.inbox.push_back(bytes_of("short"));
    comm.inbox.push_back(sf::exec::make_chunk(sf::exec::kEndOfStream, 0, {}));
    std::vector<Written> writes;
    std::vector<std::string> journals;
    const auto err = sf::exec::receive_chunks(comm, 3, recording(writes, journals));
    ASSERT_TRUE(err.has_value());
    EXPECT_NE(std::string(err->what()).find("short gather message"), std::string::npos) << err->what();
}

TEST(Transport, AWriteErrorIsReturnedNotThrown) {
    FakeComm comm(2);
    comm.inbox.push_back(sf::exec::make_chunk(0, 0, bytes_of("a")));
    comm.inbox.push_back(sf::exec::make_chunk(sf::exec::kEndOfStream, 0, {}));
    sf::exec::Receiver r;
    r.write = [](std::uint32_t, std::uint64_t, std::span<const std::byte>) {
        throw sf::core::Error(sf::core::ErrorKind::Io, "out.partial", "t", "no space left on device");
    };
    r.journal = [](std::span<const std::byte>) {};
    const auto err = sf::exec::receive_chunks(comm, 1, r);
    ASSERT_TRUE(err.has_value());
    EXPECT_EQ(err->kind(), sf::core::ErrorKind::Io);
}
