// Readable names for codes, for logs and error messages. Values a peer can send but the
// protocol does not define get a name too: these functions see untrusted input.
#include <charconv>
#include <iterator>

#include "socks/codec.h"

namespace tunsocks::socks {

std::string_view describe(Errc code) {
  switch (code) {
    case Errc::bad_version:
      return "bad version";
    case Errc::bad_reserved:
      return "reserved byte not zero";
    case Errc::bad_command:
      return "bad command";
    case Errc::bad_address_type:
      return "bad address type";
    case Errc::empty_domain:
      return "empty domain";
    case Errc::field_too_long:
      return "field too long";
    case Errc::bad_auth_version:
      return "bad auth version";
    case Errc::bad_reply_code:
      return "bad reply code";
    case Errc::bad_method:
      return "method not offered";
    case Errc::truncated:
      return "truncated datagram";
    case Errc::embedded_nul:
      return "NUL inside a NUL-terminated field";
    case Errc::buffer_too_small:
      return "buffer too small";
    case Errc::empty_field:
      return "empty field";
  }
  return "unknown error";
}

std::string to_string(const Error& error) {
  std::string text(describe(error.code));
  text += " (";
  text += error.field.empty() ? std::string_view("message") : error.field;
  text += " at byte ";
  char digits[24];
  const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), error.offset);
  text.append(digits, end);
  text += ')';
  return text;
}

std::string_view describe(Command command) {
  switch (command) {
    case Command::connect:
      return "CONNECT";
    case Command::bind:
      return "BIND";
    case Command::udp_associate:
      return "UDP ASSOCIATE";
  }
  return "unknown command";
}

std::string_view describe(Socks4Reply code) {
  switch (code) {
    case Socks4Reply::granted:
      return "request granted";
    case Socks4Reply::rejected:
      return "request rejected or failed";
    case Socks4Reply::no_identd:
      return "rejected: identd not reachable";
    case Socks4Reply::identd_mismatch:
      return "rejected: identd did not confirm the user ID";
  }
  return "unknown SOCKS4 reply code";
}

std::string_view describe(Socks5Reply code) {
  switch (code) {
    case Socks5Reply::succeeded:
      return "succeeded";
    case Socks5Reply::general_failure:
      return "general SOCKS server failure";
    case Socks5Reply::not_allowed:
      return "connection not allowed by ruleset";
    case Socks5Reply::network_unreachable:
      return "network unreachable";
    case Socks5Reply::host_unreachable:
      return "host unreachable";
    case Socks5Reply::connection_refused:
      return "connection refused";
    case Socks5Reply::ttl_expired:
      return "TTL expired";
    case Socks5Reply::command_not_supported:
      return "command not supported";
    case Socks5Reply::address_type_not_supported:
      return "address type not supported";
  }
  return "unassigned SOCKS5 reply code";
}

std::string_view reply_token(Socks4Reply code) {
  switch (code) {
    case Socks4Reply::granted:
      return "granted";
    case Socks4Reply::rejected:
      return "rejected";
    case Socks4Reply::no_identd:
      return "no_identd";
    case Socks4Reply::identd_mismatch:
      return "identd_mismatch";
  }
  return "unknown";
}

std::string_view reply_token(Socks5Reply code) {
  switch (code) {
    case Socks5Reply::succeeded:
      return "succeeded";
    case Socks5Reply::general_failure:
      return "general_failure";
    case Socks5Reply::not_allowed:
      return "not_allowed";
    case Socks5Reply::network_unreachable:
      return "network_unreachable";
    case Socks5Reply::host_unreachable:
      return "host_unreachable";
    case Socks5Reply::connection_refused:
      return "connection_refused";
    case Socks5Reply::ttl_expired:
      return "ttl_expired";
    case Socks5Reply::command_not_supported:
      return "command_not_supported";
    case Socks5Reply::address_type_not_supported:
      return "address_type_not_supported";
  }
  return "unknown";
}

}  // namespace tunsocks::socks
