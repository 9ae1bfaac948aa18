// Username/password authentication (RFC 1929): VER=1, ULEN, UNAME, PLEN, PASSWD from the
// client; VER=1, STATUS from the server.
#include "socks/codec.h"
#include "socks/wire.h"

namespace tunsocks::socks {

namespace {

using wire::fail;
using wire::refuse;

constexpr std::size_t kStatusSize = 2;

}  // namespace

ParseResult<UserPassRequest> parse_user_pass_request(ByteView in) {
  if (in.size() > 0 && in[0] != wire::kUserPassVersion) {
    return fail(Errc::bad_auth_version, 0, wire::kUserPassFailure, "VER");
  }
  // Shortest: both lengths 0. RFC 1929 wants 1..255 for each, but an empty field is read
  // and handed to the authenticator, which refuses it like any wrong credential.
  if (in.size() < 2) return wire::need_more<UserPassRequest>(3, in.size());
  const std::size_t user_size = in[1];
  const std::size_t plen_at = 2 + user_size;
  if (in.size() <= plen_at) return wire::need_more<UserPassRequest>(plen_at + 1, in.size());
  const std::size_t password_size = in[plen_at];
  const std::size_t end = plen_at + 1 + password_size;
  if (in.size() < end) return wire::need_more<UserPassRequest>(end, in.size());

  UserPassRequest request;
  request.user = wire::as_text(in.subspan(2, user_size));
  request.password = wire::as_text(in.subspan(plen_at + 1, password_size));
  return wire::complete(std::move(request), end);
}

void write_user_pass_status(const UserPassStatus& status, Bytes& out) {
  out.push_back(wire::kUserPassVersion);
  out.push_back(status.status);
}

std::expected<void, Error> write_user_pass_request(const UserPassRequest& request, Bytes& out) {
  if (request.user.empty()) return refuse(Errc::empty_field, "UNAME");
  if (request.user.size() > kMaxCredentialLength) return refuse(Errc::field_too_long, "UNAME");
  // An empty password is written (PLEN 0): servers accept it in practice, and refusing it
  // would make a "user:" URL unusable.
  if (request.password.size() > kMaxCredentialLength) {
    return refuse(Errc::field_too_long, "PASSWD");
  }
  out.push_back(wire::kUserPassVersion);
  out.push_back(static_cast<std::uint8_t>(request.user.size()));
  wire::append_text(out, request.user);
  out.push_back(static_cast<std::uint8_t>(request.password.size()));
  wire::append_text(out, request.password);
  return {};
}

ParseResult<UserPassStatus> parse_user_pass_status(ByteView in) {
  if (in.size() > 0 && in[0] != wire::kUserPassVersion) {
    return fail(Errc::bad_auth_version, 0, 0, "VER");
  }
  if (in.size() < kStatusSize) return wire::need_more<UserPassStatus>(kStatusSize, in.size());
  return wire::complete(UserPassStatus{in[1]}, kStatusSize);
}

}  // namespace tunsocks::socks
