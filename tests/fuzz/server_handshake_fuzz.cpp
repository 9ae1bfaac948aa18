// socksd's handshake state machine (src/server/handshake.h), not only its parsers: the same
// client bytes fed whole and cut into chunks whose sizes come from the input must give the
// same outcome, byte for byte, because TCP may cut them anywhere.
//   byte 0: bit 0 the server requires users; bit 1 the credentials are accepted
//   byte 1: seed of the chunk sizes (1..16 bytes, a tiny PRNG)
//   rest:   what the client sends
#include <cstddef>
#include <cstdint>
#include <vector>

#include "invariants.h"
#include "server/handshake.h"

namespace {

using tunsocks::server::Handshake;
using tunsocks::socks::Bytes;
using tunsocks::socks::ByteView;
using tunsocks::socks::fuzz::expect;
using tunsocks::socks::fuzz::random_chunks;

struct Outcome {
  Handshake::Step step{};
  tunsocks::server::Protocol protocol{};
  tunsocks::server::HandshakeFailure failure{};
  bool has_request = false;
  tunsocks::socks::Command command{};
  tunsocks::socks::Address destination;
  std::string user;
  std::string socks4_user_id;
  Bytes output;  // everything the server said, in order
  Bytes pipelined;
  bool operator==(const Outcome&) const = default;
};

Outcome run(ByteView in, std::uint8_t flags, const std::vector<std::size_t>& chunks) {
  Handshake handshake((flags & 1) != 0);
  Outcome out;
  auto collect = [&] {
    const Bytes said = handshake.take_output();
    out.output.insert(out.output.end(), said.begin(), said.end());
  };
  std::size_t at = 0;
  for (std::size_t size : chunks) {
    if (handshake.step() == Handshake::Step::failed) break;
    auto step = handshake.feed(in.subspan(at, size));
    at += size;
    collect();
    if (step == Handshake::Step::authenticate) {
      step = handshake.auth_result((flags & 2) != 0);
      collect();
    }
  }
  out.step = handshake.step();
  if (out.step == Handshake::Step::request) {
    handshake.reply(tunsocks::socks::Socks5Reply::succeeded,
                    tunsocks::socks::Address::ipv4({10, 0, 0, 1}, 1080));
    collect();
    expect(handshake.reply_name() == "succeeded");
  }
  out.protocol = handshake.protocol();
  out.failure = handshake.failure();
  out.has_request = handshake.has_request();
  if (out.has_request) {
    out.command = handshake.command();
    out.destination = handshake.destination();
  }
  out.user = handshake.user();
  out.socks4_user_id = handshake.socks4_user_id();
  out.pipelined = handshake.take_pipelined();
  expect((out.failure == tunsocks::server::HandshakeFailure::none) ==
         (out.step != Handshake::Step::failed));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const ByteView in(data + 2, size - 2);

  const Outcome whole = run(in, flags, {in.size()});
  const Outcome chunked = run(in, flags, random_chunks(in.size(), data[1]));
  expect(whole == chunked);
  return 0;
}
