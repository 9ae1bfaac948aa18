// SOCKS4/4a: the request a server reads and the reply a client reads.
#include "invariants.h"

namespace tunsocks::socks::fuzz {
namespace {

const StreamCodec<Socks4Request> kRequest{
    parse_socks4_request,
    write_socks4_request,
    always_writable<Socks4Request>,
    [](Errc) -> std::uint8_t { return static_cast<std::uint8_t>(Socks4Reply::rejected); },
};

const StreamCodec<Socks4Response> kResponse{
    parse_socks4_response,
    [](const Socks4Response& m, Bytes& out) -> std::expected<void, Error> {
      write_socks4_response(m, out);
      return {};
    },
    always_writable<Socks4Response>,
    no_reply,
};

}  // namespace
}  // namespace tunsocks::socks::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tunsocks::socks;
  using namespace tunsocks::socks::fuzz;
  const ByteView in(data, size);
  const auto request = check_stream(kRequest, in);
  if (request.has_value() && request->complete()) {
    const Socks4Request& m = *request->message;
    expect(m.command == Command::connect || m.command == Command::bind);
    expect(m.user_id.size() <= kMaxSocks4UserId && m.domain.size() <= kMaxDomainLength);
    expect(m.is_socks4a() == (m.ip[0] == 0 && m.ip[1] == 0 && m.ip[2] == 0 && m.ip[3] != 0));
    (void)to_string(m.destination());
    expect(!describe(m.command).empty());
  }
  if (const auto reply = check_stream(kResponse, in); reply.has_value() && reply->complete()) {
    // Every code has a name for the logs, known or not.
    expect(!describe(reply->message->code).empty() && !reply_token(reply->message->code).empty());
  }
  return 0;
}
