// What every stream parser of the codec promises, checked on arbitrary input by the fuzz
// targets. A broken promise traps, so libFuzzer (or the corpus replay) reports the input.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "socks/codec.h"

namespace tunsocks::socks::fuzz {

inline void expect(bool condition) {
  if (!condition) __builtin_trap();
}

// How one message type is parsed and written, and what its errors must carry.
template <class Message>
struct StreamCodec {
  ParseResult<Message> (*parse)(ByteView);
  std::expected<void, Error> (*write)(const Message&, Bytes&);
  bool (*writable)(const Message&);  // the writer must accept exactly these
  std::uint8_t (*reply_for)(Errc);   // the reply code a parse error must carry
};

inline std::uint8_t no_reply(Errc) {
  return 0;
}

template <class Message>
bool always_writable(const Message&) {
  return true;
}

template <class Message>
bool same_result(const ParseResult<Message>& a, const ParseResult<Message>& b) {
  if (a.has_value() != b.has_value()) return false;
  if (!a.has_value()) return a.error() == b.error();
  return a->message == b->message && a->consumed == b->consumed && a->missing == b->missing;
}

// Checks `in` against the parser's promises and returns the parse result, so a target can go
// on with the bytes after a message:
// - an error names a field, points at a byte that is there, carries the right reply code,
//   and is found as soon as that byte arrives (the bytes before it are merely incomplete);
// - incomplete consumes nothing, asks for at least one byte, and so do its prefixes;
// - a message consumes at most the input; every proper prefix of it is incomplete and asks
//   for no more than the message still holds; the writer accepts it exactly when it should,
//   reproduces the same bytes, and those parse back to the same message.
template <class Message>
ParseResult<Message> check_stream(const StreamCodec<Message>& codec, ByteView in) {
  const ParseResult<Message> result = codec.parse(in);
  expect(same_result(result, codec.parse(in)));  // no hidden state between calls

  if (!result.has_value()) {
    const Error& error = result.error();
    expect(!error.field.empty());
    expect(error.offset < in.size());
    expect(error.reply == codec.reply_for(error.code));
    const auto before = codec.parse(in.first(error.offset));
    expect(before.has_value() && !before->complete() && before->missing >= 1);
    const auto at = codec.parse(in.first(error.offset + 1));
    expect(!at.has_value() && at.error() == error);
    return result;
  }

  if (!result->complete()) {
    expect(result->consumed == 0 && result->missing >= 1);
    if (!in.empty()) {
      const auto shorter = codec.parse(in.first(in.size() - 1));
      expect(shorter.has_value() && !shorter->complete() && shorter->missing >= 1);
    }
    return result;
  }

  const std::size_t size = result->consumed;
  expect(size >= 1 && size <= in.size() && result->missing == 0);
  for (std::size_t n = 0; n < size; ++n) {
    const auto part = codec.parse(in.first(n));
    expect(part.has_value() && !part->complete() && part->consumed == 0);
    expect(part->missing >= 1 && part->missing <= size - n);
  }

  Bytes out;
  const auto written = codec.write(*result->message, out);
  expect(written.has_value() == codec.writable(*result->message));
  if (written.has_value()) {
    expect(out.size() == size && std::equal(out.begin(), out.end(), in.begin()));
    const auto again = codec.parse(out);
    expect(again.has_value() && again->complete() && again->consumed == out.size());
    expect(*again->message == *result->message);
  }
  return result;
}

// The input after a complete message, or nothing.
template <class Message>
ByteView rest_after(const ParseResult<Message>& result, ByteView in) {
  if (!result.has_value() || !result->complete()) return {};
  return in.subspan(result->consumed);
}

// Sizes of the pieces a stream of `total` bytes arrives in, 1..16 bytes each, from `seed`:
// a handshake fed in these pieces must end exactly as when fed whole.
inline std::vector<std::size_t> random_chunks(std::size_t total, std::uint8_t seed) {
  std::uint32_t state = seed * 2654435761u + 1;
  std::vector<std::size_t> chunks;
  for (std::size_t left = total; left > 0;) {
    state = state * 1103515245u + 12345u;
    const std::size_t n = std::min<std::size_t>(left, 1 + (state >> 16) % 16);
    chunks.push_back(n);
    left -= n;
  }
  return chunks;
}

}  // namespace tunsocks::socks::fuzz
