// tunsocks' client handshake (src/tunnel/client_handshake.h) against a hostile upstream: the
// upstream's bytes fed whole and cut into chunks whose sizes come from the input must give
// the same outcome; feed() never claims more than it was given, takes every byte while in
// progress, and leaves the payload behind a successful reply (same segment) to the caller.
//   byte 0: bit 0 SOCKS4 (else 5); bit 1 credentials; bit 2 pipelined request;
//           bit 3 UDP ASSOCIATE (else CONNECT); bit 4 a destination name (else IPv4)
//   byte 1: seed of the chunk sizes (1..16 bytes)
//   rest:   what the upstream sends
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "invariants.h"
#include "tunnel/client_handshake.h"

namespace {

using tunsocks::socks::Bytes;
using tunsocks::socks::ByteView;
using tunsocks::socks::fuzz::expect;
using tunsocks::socks::fuzz::random_chunks;
using tunsocks::tunnel::ClientHandshake;

struct Outcome {
  ClientHandshake::Status status{};
  std::optional<tunsocks::tunnel::HandshakeFailure> failure;
  std::optional<std::uint8_t> reply_code;
  tunsocks::socks::Address bound;
  std::size_t payload_at = 0;  // where the relayed bytes begin (succeeded only)
  Bytes sent;                  // everything said to the upstream
};

bool same_end(const Outcome& a, const Outcome& b) {
  return a.status == b.status && a.failure == b.failure && a.reply_code == b.reply_code &&
         a.bound == b.bound && a.payload_at == b.payload_at;
}

Outcome run(ByteView in, std::uint8_t flags, const std::vector<std::size_t>& chunks) {
  tunsocks::tunnel::HandshakeOptions options;
  options.version = (flags & 1) != 0 ? tunsocks::tunnel::SocksVersion::socks4
                                     : tunsocks::tunnel::SocksVersion::socks5;
  if ((flags & 2) != 0) options.credentials = tunsocks::tunnel::Credentials{"user", "secret"};
  options.pipeline_request = (flags & 4) != 0;
  const auto command = (flags & 8) != 0 ? tunsocks::socks::Command::udp_associate
                                        : tunsocks::socks::Command::connect;
  const auto destination = (flags & 16) != 0 ? tunsocks::socks::Address::name("example.com", 443)
                                             : tunsocks::socks::Address::ipv4({192, 0, 2, 1}, 443);
  ClientHandshake handshake(options, command, destination);
  Outcome out;
  auto collect = [&] {
    const Bytes said = handshake.take_output();
    out.sent.insert(out.sent.end(), said.begin(), said.end());
  };
  collect();
  std::size_t at = 0;
  for (std::size_t size : chunks) {
    if (handshake.status() != ClientHandshake::Status::in_progress) break;
    const std::size_t used = handshake.feed(in.subspan(at, size));
    expect(used <= size);
    if (handshake.status() == ClientHandshake::Status::in_progress) expect(used == size);
    if (handshake.status() == ClientHandshake::Status::succeeded) out.payload_at = at + used;
    at += size;
    collect();
  }
  out.status = handshake.status();
  out.reply_code = handshake.reply_code();
  if (out.status == ClientHandshake::Status::failed) {
    out.failure = handshake.failure();
    expect(!describe(*out.failure).empty() && !handshake.detail().empty());
  }
  if (out.status == ClientHandshake::Status::succeeded) out.bound = handshake.bound();
  (void)handshake.reply_text();
  // Once over, the handshake takes nothing more.
  expect(handshake.feed(in) == 0 || out.status == ClientHandshake::Status::in_progress);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const ByteView in(data + 2, size - 2);

  const Outcome whole = run(in, flags, {in.size()});
  const Outcome chunked = run(in, flags, random_chunks(in.size(), data[1]));
  expect(same_end(whole, chunked));
  // What was said may differ only in what a failure cut short: a request queued behind a
  // method selection in the same read as a bad reply is never taken when all comes at once.
  const Outcome& shorter = whole.sent.size() <= chunked.sent.size() ? whole : chunked;
  const Outcome& longer = &shorter == &whole ? chunked : whole;
  expect(std::equal(shorter.sent.begin(), shorter.sent.end(), longer.sent.begin()));
  if (whole.status != ClientHandshake::Status::failed) expect(whole.sent == chunked.sent);
  return 0;
}
