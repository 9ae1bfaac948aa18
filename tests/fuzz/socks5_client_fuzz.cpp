// What a SOCKS5 client reads from a possibly hostile upstream: the method selection, the
// RFC 1929 status, the reply. Each parser sees the whole input, and the input is also read
// as one pipelined handshake.
#include "invariants.h"

namespace tunsocks::socks::fuzz {
namespace {

const StreamCodec<Socks5MethodSelection> kSelection{
    parse_socks5_method_selection,
    [](const Socks5MethodSelection& m, Bytes& out) -> std::expected<void, Error> {
      write_socks5_method_selection(m, out);
      return {};
    },
    always_writable<Socks5MethodSelection>,
    no_reply,
};

const StreamCodec<UserPassStatus> kStatus{
    parse_user_pass_status,
    [](const UserPassStatus& m, Bytes& out) -> std::expected<void, Error> {
      write_user_pass_status(m, out);
      return {};
    },
    always_writable<UserPassStatus>,
    no_reply,
};

const StreamCodec<Socks5Response> kResponse{
    parse_socks5_response,
    write_socks5_response,
    always_writable<Socks5Response>,
    no_reply,
};

}  // namespace
}  // namespace tunsocks::socks::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tunsocks::socks;
  using namespace tunsocks::socks::fuzz;
  const ByteView in(data, size);
  check_stream(kStatus, in);
  if (const auto reply = check_stream(kResponse, in); reply.has_value() && reply->complete()) {
    expect(!describe(reply->message->code).empty() && !reply_token(reply->message->code).empty());
    (void)to_string(reply->message->bound);
  }

  // selection, [status if user/pass was picked], reply; as a client that offered 0 and 2.
  const auto selection = check_stream(kSelection, in);
  ByteView rest = rest_after(selection, in);
  if (rest.empty()) return 0;
  const Socks5Greeting offered{{method::no_auth, method::user_pass}};
  const std::uint8_t picked = selection->message->method;
  expect(check_method_selection(offered, *selection->message).has_value() ==
         (picked == method::no_auth || picked == method::user_pass ||
          picked == method::no_acceptable));
  if (picked == method::user_pass) rest = rest_after(check_stream(kStatus, rest), rest);
  if (!rest.empty()) check_stream(kResponse, rest);
  return 0;
}
