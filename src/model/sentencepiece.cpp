// SentencePiece tokenizer.model reader: the protobuf wire format decoded by hand (no libprotobuf).
//
// Wire format (protobuf encoding): a message is a run of fields, each `tag` (varint: field_number << 3 | wire_type)
// then a payload by wire type: 0 varint (<= 10 bytes), 1 fixed 8 bytes, 2 varint length + bytes, 5 fixed 4 bytes
// (3/4, deprecated groups, are rejected). Messages used (sentencepiece_model.proto):
//   ModelProto      1 pieces: SentencePiece (repeated)   2 trainer_spec   3 normalizer_spec   4 self_test_data
//                   5 denormalizer_spec                   (other fields and extensions skipped)
//   SentencePiece   1 piece: string   2 score: float (fixed32)   3 type: enum, default NORMAL
//                   (1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE)
//   TrainerSpec     3 model_type: enum (UNIGRAM 1, BPE 2, WORD 3, CHAR 4)   35 byte_fallback: bool
//   NormalizerSpec  3 add_dummy_prefix: bool (default true)   4 remove_extra_whitespaces: bool (default true)
// The parser is fuzzed: every read is bounds-checked and every failure is Error(BadInput) naming the file.
#include <shardforge/model.hpp>

#include <set>

namespace shardforge::model {
namespace {

using core::Error;
using core::ErrorKind;

class Reader {
public:
    Reader(std::string_view bytes, const std::string& file, const char* what) : s_(bytes), file_(file), what_(what) {}

    [[nodiscard]] bool done() const noexcept { return pos_ >= s_.size(); }

    [[noreturn]] void fail(const std::string& why) const {
        throw Error(ErrorKind::BadInput, file_, "",
                    core::cat("not a SentencePiece model: ", what_, " at byte ", pos_, ": ", why));
    }

    std::uint64_t varint() {
        std::uint64_t v = 0;
        for (int i = 0; i < 10; ++i) {
            if (pos_ >= s_.size()) fail("truncated varint");
            const auto b = static_cast<std::uint8_t>(s_[pos_++]);
            if (i == 9 && b > 1) fail("varint longer than 64 bits");
            v |= std::uint64_t{b & 0x7fu} << (7 * i);
            if ((b & 0x80u) == 0) return v;
        }
        fail("varint longer than 10 bytes");
    }

    std::string_view bytes(std::uint64_t n) {
        if (n > s_.size() - pos_) fail(core::cat("field of ", n, " bytes runs past the end (", s_.size() - pos_,
                                                 " left)"));
        const std::string_view r = s_.substr(pos_, static_cast<std::size_t>(n));
        pos_ += static_cast<std::size_t>(n);
        return r;
    }

    std::string_view length_delimited() { return bytes(varint()); }

    std::uint32_t fixed32() {
        const std::string_view b = bytes(4);
        std::uint32_t v = 0;
        for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(b[static_cast<std::size_t>(i)]);
        return v;
    }

    // Reads a tag; returns field number and wire type.
    void tag(std::uint32_t& field, std::uint32_t& wire) {
        const std::uint64_t t = varint();
        field = static_cast<std::uint32_t>(t >> 3);
        wire = static_cast<std::uint32_t>(t & 7u);
        if (field == 0 || (t >> 3) > 0x1fffffffu) fail(core::cat("invalid field number ", t >> 3));
    }

    void skip(std::uint32_t field, std::uint32_t wire) {
        switch (wire) {
            case 0: (void)varint(); return;
            case 1: (void)bytes(8); return;
            case 2: (void)length_delimited(); return;
            case 5: (void)bytes(4); return;
            default: fail(core::cat("field ", field, " has unsupported wire type ", wire));
        }
    }

    void expect_wire(std::uint32_t field, std::uint32_t wire, std::uint32_t expected) {
        if (wire != expected)
            fail(core::cat("field ", field, " has wire type ", wire, ", expected ", expected));
    }

private:
    std::string_view s_;
    const std::string& file_;
    const char* what_;
    std::size_t pos_ = 0;
};

SpPiece parse_piece(std::string_view msg, const std::string& file, std::size_t index) {
    const std::string what = core::cat("piece ", index);
    Reader r(msg, file, what.c_str());
    SpPiece p;
    bool have_piece = false;
    while (!r.done()) {
        std::uint32_t field = 0, wire = 0;
        r.tag(field, wire);
        if (field == 1) {
            r.expect_wire(field, wire, 2);
            p.piece = std::string(r.length_delimited());
            have_piece = true;
        } else if (field == 2) {
            r.expect_wire(field, wire, 5);
            p.score = core::bits_f32(r.fixed32());
        } else if (field == 3) {
            r.expect_wire(field, wire, 0);
            const std::uint64_t t = r.varint();
            if (t < 1 || t > 6) r.fail(core::cat("unknown piece type ", t));
            p.type = static_cast<int>(t);
        } else {
            r.skip(field, wire);
        }
    }
    if (!have_piece || p.piece.empty()) r.fail("empty piece");
    return p;
}

void parse_trainer_spec(std::string_view msg, const std::string& file, SpModel& m) {
    Reader r(msg, file, "trainer_spec");
    while (!r.done()) {
        std::uint32_t field = 0, wire = 0;
        r.tag(field, wire);
        if (field == 3) {
            r.expect_wire(field, wire, 0);
            const std::uint64_t t = r.varint();
            if (t < 1 || t > 4) r.fail(core::cat("unknown model_type ", t));
            m.model_type = static_cast<int>(t);
        } else if (field == 35) {
            r.expect_wire(field, wire, 0);
            m.byte_fallback = r.varint() != 0;
        } else {
            r.skip(field, wire);
        }
    }
}

void parse_normalizer_spec(std::string_view msg, const std::string& file, SpModel& m) {
    Reader r(msg, file, "normalizer_spec");
    while (!r.done()) {
        std::uint32_t field = 0, wire = 0;
        r.tag(field, wire);
        if (field == 3) {
            r.expect_wire(field, wire, 0);
            m.add_dummy_prefix = r.varint() != 0;
        } else if (field == 4) {
            r.expect_wire(field, wire, 0);
            m.remove_extra_whitespaces = r.varint() != 0;
        } else {
            r.skip(field, wire);
        }
    }
}

}  // namespace

SpModel parse_sentencepiece(std::string_view bytes, const std::string& file_for_errors) {
    SpModel m;
    Reader r(bytes, file_for_errors, "ModelProto");
    while (!r.done()) {
        std::uint32_t field = 0, wire = 0;
        r.tag(field, wire);
        if (field == 1) {
            r.expect_wire(field, wire, 2);
            m.pieces.push_back(parse_piece(r.length_delimited(), file_for_errors, m.pieces.size()));
        } else if (field == 2) {
            r.expect_wire(field, wire, 2);
            parse_trainer_spec(r.length_delimited(), file_for_errors, m);  // repeated messages merge, as protobuf
        } else if (field == 3) {
            r.expect_wire(field, wire, 2);
            parse_normalizer_spec(r.length_delimited(), file_for_errors, m);
        } else {
            r.skip(field, wire);
        }
    }
    if (m.pieces.empty())
        throw Error(ErrorKind::BadInput, file_for_errors, "", "not a SentencePiece model: no pieces");
    // sentencepiece's ModelInterface::InitializePieces: a piece string may be defined once among the
    // NORMAL/USER_DEFINED/UNUSED pieces and once among the reserved (UNKNOWN/CONTROL/BYTE) ones.
    std::set<std::string_view> normal, reserved;
    for (std::size_t i = 0; i < m.pieces.size(); ++i) {
        const SpPiece& p = m.pieces[i];
        const bool is_normal = p.type == 1 || p.type == 4 || p.type == 5;
        if (!(is_normal ? normal : reserved).insert(p.piece).second)
            throw Error(ErrorKind::BadInput, file_for_errors, "",
                        core::cat("SentencePiece model: piece ", i, " '", p.piece, "' is already defined"));
    }
    return m;
}

std::vector<SpPiece> parse_sentencepiece_model(std::string_view bytes, const std::string& file_for_errors) {
    return parse_sentencepiece(bytes, file_for_errors).pieces;
}

}  // namespace shardforge::model
