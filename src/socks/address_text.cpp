// Addresses as text for logs: "1.2.3.4:80", "[2001:db8::1]:443", "example.com:443". A
// domain comes from a peer and may hold any byte; escaping keeps control characters (a
// newline, an ANSI escape) out of our log lines.
#include <charconv>
#include <iterator>

#include "socks/codec.h"

namespace tunsocks::socks {

namespace {

void append_number(std::string& text, unsigned value, int base = 10) {
  char digits[8];
  const auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), value, base);
  text.append(digits, end);
}

void append_ipv4(std::string& text, const std::uint8_t* ip) {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) text += '.';
    append_number(text, ip[i]);
  }
}

// RFC 5952: lowercase hex without leading zeros; the longest run of two or more zero groups
// (the first of equal runs) becomes "::"; IPv4-mapped addresses end in dotted form.
void append_ipv6(std::string& text, const std::array<std::uint8_t, 16>& ip) {
  unsigned groups[8];
  for (int i = 0; i < 8; ++i)
    groups[i] = (unsigned{ip[2 * i]} << 8) | ip[2 * i + 1];

  const bool mapped = groups[0] == 0 && groups[1] == 0 && groups[2] == 0 && groups[3] == 0 &&
                      groups[4] == 0 && groups[5] == 0xFFFF;
  if (mapped) {
    text += "::ffff:";
    append_ipv4(text, ip.data() + 12);
    return;
  }

  int best_start = -1;
  int best_length = 1;  // a single zero group is not shortened
  for (int i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && groups[j] == 0)
      ++j;
    if (j - i > best_length) {
      best_start = i;
      best_length = j - i;
    }
    i = j;
  }

  for (int i = 0; i < 8; ++i) {
    if (i == best_start) {
      text += "::";
      i += best_length - 1;
      continue;
    }
    if (i != 0 && i != best_start + best_length) text += ':';
    append_number(text, groups[i], 16);
  }
}

void append_escaped(std::string& text, std::string_view name) {
  constexpr char kHex[] = "0123456789abcdef";
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte > 0x20 && byte < 0x7F && byte != '\\') {
      text += c;
    } else {
      text += "\\x";
      text += kHex[byte >> 4];
      text += kHex[byte & 0x0F];
    }
  }
}

}  // namespace

std::string to_string(const Address& address) {
  std::string text;
  switch (address.type) {
    case AddressType::ipv4:
      append_ipv4(text, address.ip.data());
      break;
    case AddressType::ipv6:
      text += '[';
      append_ipv6(text, address.ip);
      text += ']';
      break;
    case AddressType::domain:
      append_escaped(text, address.domain);
      break;
    default:
      text += "<address type ";
      append_number(text, static_cast<unsigned>(address.type));
      text += '>';
      break;
  }
  text += ':';
  append_number(text, address.port);
  return text;
}

}  // namespace tunsocks::socks
