// What a SOCKS5 server reads: the greeting, the RFC 1929 request, the request. Each parser
// sees the whole input, and the input is also read as one pipelined handshake.
#include "invariants.h"

namespace tunsocks::socks::fuzz {
namespace {

const StreamCodec<Socks5Greeting> kGreeting{
    parse_socks5_greeting,
    write_socks5_greeting,
    [](const Socks5Greeting& m) { return !m.methods.empty(); },  // NMETHODS 0 is not written
    no_reply,
};

const StreamCodec<UserPassRequest> kUserPass{
    parse_user_pass_request, write_user_pass_request,
    [](const UserPassRequest& m) { return !m.user.empty(); },  // ULEN 0 is not written
    [](Errc) -> std::uint8_t { return 0x01; },                 // STATUS: failure
};

const StreamCodec<Socks5Request> kRequest{
    parse_socks5_request,
    write_socks5_request,
    always_writable<Socks5Request>,
    [](Errc code) -> std::uint8_t {
      if (code == Errc::bad_command) return 0x07;
      if (code == Errc::bad_address_type) return 0x08;
      return 0x01;
    },
};

}  // namespace
}  // namespace tunsocks::socks::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tunsocks::socks;
  using namespace tunsocks::socks::fuzz;
  const ByteView in(data, size);
  check_stream(kUserPass, in);
  if (const auto request = check_stream(kRequest, in); request.has_value() && request->complete()) {
    (void)to_string(request->message->destination);
    expect(!describe(request->message->command).empty());
  }

  // greeting, [username/password if offered], request: all in one buffer.
  const auto greeting = check_stream(kGreeting, in);
  ByteView rest = rest_after(greeting, in);
  if (rest.empty()) return 0;
  if (greeting->message->offers(method::user_pass))
    rest = rest_after(check_stream(kUserPass, rest), rest);
  if (!rest.empty()) check_stream(kRequest, rest);
  return 0;
}
