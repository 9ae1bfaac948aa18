// SOCKS4 and SOCKS4a. Request: VN=4, CD, DSTPORT(2), DSTIP(4), USERID, NUL, and for SOCKS4a
// (DSTIP 0.0.0.x, x != 0) a domain and a second NUL. Reply: VN=0, CD, DSTPORT(2), DSTIP(4).
#include <algorithm>

#include "socks/codec.h"
#include "socks/wire.h"

namespace tunsocks::socks {

namespace {

using wire::fail;
using wire::refuse;

constexpr std::size_t kFixedSize = 8;  // VN CD DSTPORT DSTIP
constexpr std::size_t kReplySize = 8;
// The protocol leaves the SOCKS4a domain unbounded too; a DNS name fits in 255 bytes.
constexpr std::size_t kMaxSocks4Domain = kMaxDomainLength;

bool is_socks4a_marker(const std::array<std::uint8_t, 4>& ip) {
  return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0;
}

// A NUL-terminated field starting at `start`.
struct NulTerminated {
  enum class State : std::uint8_t { found, incomplete, too_long };
  State state;
  std::size_t length;  // found: the bytes before the NUL; incomplete: the bytes seen so far
};

// Looks at no more than limit + 1 bytes, so a peer that never sends the NUL is cut off as soon
// as it passes the limit, however much it sends.
NulTerminated scan_nul_terminated(ByteView in, std::size_t start, std::size_t limit) {
  const ByteView window = in.subspan(start, std::min(in.size() - start, limit + 1));
  const auto nul = std::find(window.begin(), window.end(), std::uint8_t{0});
  const auto length = static_cast<std::size_t>(nul - window.begin());
  if (nul != window.end()) return {NulTerminated::State::found, length};
  if (length > limit) return {NulTerminated::State::too_long, limit};
  return {NulTerminated::State::incomplete, length};
}

std::expected<void, Error> check_nul_terminable(std::string_view text, std::size_t limit,
                                                std::string_view field) {
  if (text.find('\0') != std::string_view::npos) return refuse(Errc::embedded_nul, field);
  if (text.size() > limit) return refuse(Errc::field_too_long, field);
  return {};
}

}  // namespace

Address Socks4Request::destination() const {
  if (is_socks4a()) return Address::name(domain, port);
  return Address::ipv4(ip, port);
}

ParseResult<Socks4Request> parse_socks4_request(ByteView in) {
  using State = NulTerminated::State;
  // Each byte is judged as soon as it is there, so garbage fails before more is awaited.
  if (in.size() > 0 && in[0] != wire::kSocks4Version) {
    return fail(Errc::bad_version, 0, wire::kSocks4Rejected, "VN");
  }
  if (in.size() > 1 && in[1] != static_cast<std::uint8_t>(Command::connect) &&
      in[1] != static_cast<std::uint8_t>(Command::bind)) {
    return fail(Errc::bad_command, 1, wire::kSocks4Rejected, "CD");
  }
  // Shortest: an empty USERID, then its NUL.
  if (in.size() < kFixedSize) return wire::need_more<Socks4Request>(kFixedSize + 1, in.size());

  Socks4Request request;
  request.command = static_cast<Command>(in[1]);
  request.port = wire::get_u16(in, 2);
  std::copy_n(in.begin() + 4, 4, request.ip.begin());
  const bool socks4a = is_socks4a_marker(request.ip);
  const std::size_t domain_least = socks4a ? 2 : 0;  // one byte and its NUL

  const NulTerminated user = scan_nul_terminated(in, kFixedSize, kMaxSocks4UserId);
  if (user.state == State::too_long) {
    return fail(Errc::field_too_long, kFixedSize + kMaxSocks4UserId, wire::kSocks4Rejected,
                "USERID");
  }
  if (user.state == State::incomplete) {
    return wire::need_more<Socks4Request>(in.size() + 1 + domain_least, in.size());
  }
  const std::size_t user_end = kFixedSize + user.length + 1;  // after the NUL

  std::size_t end = user_end;
  if (socks4a) {
    const NulTerminated name = scan_nul_terminated(in, user_end, kMaxSocks4Domain);
    if (name.state == State::found && name.length == 0) {
      return fail(Errc::empty_domain, user_end, wire::kSocks4Rejected, "DOMAIN");
    }
    if (name.state == State::too_long) {
      return fail(Errc::field_too_long, user_end + kMaxSocks4Domain, wire::kSocks4Rejected,
                  "DOMAIN");
    }
    if (name.state == State::incomplete) {
      return wire::need_more<Socks4Request>(in.size() + (name.length == 0 ? 2 : 1), in.size());
    }
    request.domain = wire::as_text(in.subspan(user_end, name.length));
    end = user_end + name.length + 1;
  }
  request.user_id = wire::as_text(in.subspan(kFixedSize, user.length));
  return wire::complete(std::move(request), end);
}

ParseResult<Socks4Response> parse_socks4_response(ByteView in) {
  if (in.size() > 0 && in[0] != wire::kSocks4ReplyVersion) {
    return fail(Errc::bad_version, 0, 0, "VN");
  }
  if (in.size() > 1 && (in[1] < static_cast<std::uint8_t>(Socks4Reply::granted) ||
                        in[1] > static_cast<std::uint8_t>(Socks4Reply::identd_mismatch))) {
    return fail(Errc::bad_reply_code, 1, 0, "CD");
  }
  if (in.size() < kReplySize) return wire::need_more<Socks4Response>(kReplySize, in.size());

  Socks4Response response;
  response.code = static_cast<Socks4Reply>(in[1]);
  response.port = wire::get_u16(in, 2);
  std::copy_n(in.begin() + 4, 4, response.ip.begin());
  return wire::complete(response, kReplySize);
}

std::expected<void, Error> write_socks4_request(const Socks4Request& request, Bytes& out) {
  if (request.command != Command::connect && request.command != Command::bind) {
    return refuse(Errc::bad_command, "CD");
  }
  if (auto ok = check_nul_terminable(request.user_id, kMaxSocks4UserId, "USERID"); !ok) {
    return ok;
  }
  if (auto ok = check_nul_terminable(request.domain, kMaxSocks4Domain, "DOMAIN"); !ok) {
    return ok;
  }
  if (!request.is_socks4a() && is_socks4a_marker(request.ip)) {
    return refuse(Errc::empty_domain, "DOMAIN");
  }

  const std::array<std::uint8_t, 4> ip = request.is_socks4a() && !is_socks4a_marker(request.ip)
                                             ? std::array<std::uint8_t, 4>{0, 0, 0, 1}
                                             : request.ip;
  out.push_back(wire::kSocks4Version);
  out.push_back(static_cast<std::uint8_t>(request.command));
  wire::append_u16(out, request.port);
  out.insert(out.end(), ip.begin(), ip.end());
  wire::append_text(out, request.user_id);
  out.push_back(0);
  if (request.is_socks4a()) {
    wire::append_text(out, request.domain);
    out.push_back(0);
  }
  return {};
}

void write_socks4_response(const Socks4Response& response, Bytes& out) {
  out.push_back(wire::kSocks4ReplyVersion);
  out.push_back(static_cast<std::uint8_t>(response.code));
  wire::append_u16(out, response.port);
  out.insert(out.end(), response.ip.begin(), response.ip.end());
}

}  // namespace tunsocks::socks
