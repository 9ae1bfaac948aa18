#include "check.h"

#include <charconv>
#include <stdexcept>

namespace tunsocks::socks {

namespace {

void print_bytes(std::ostream& os, const std::vector<std::uint8_t>& bytes) {
  os << '{';
  for (std::size_t i = 0; i < bytes.size(); ++i)
    os << (i ? " " : "") << unsigned{bytes[i]};
  os << '}';
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Errc& code) {
  return os << describe(code);
}

std::ostream& operator<<(std::ostream& os, const Error& error) {
  return os << to_string(error) << " reply=" << unsigned{error.reply};
}

std::ostream& operator<<(std::ostream& os, const Address& address) {
  return os << to_string(address);
}

std::ostream& operator<<(std::ostream& os, const Socks4Request& m) {
  return os << "Socks4Request{" << describe(m.command) << ' '
            << to_string(Address::ipv4(m.ip, m.port)) << " user=\"" << m.user_id << "\" domain=\""
            << m.domain << "\"}";
}

std::ostream& operator<<(std::ostream& os, const Socks4Response& m) {
  return os << "Socks4Response{" << describe(m.code) << ' '
            << to_string(Address::ipv4(m.ip, m.port)) << '}';
}

std::ostream& operator<<(std::ostream& os, const Socks5Greeting& m) {
  os << "Socks5Greeting";
  print_bytes(os, m.methods);
  return os;
}

std::ostream& operator<<(std::ostream& os, const Socks5MethodSelection& m) {
  return os << "Socks5MethodSelection{" << unsigned{m.method} << '}';
}

std::ostream& operator<<(std::ostream& os, const UserPassRequest& m) {
  return os << "UserPassRequest{user=\"" << m.user << "\" password=\"" << m.password << "\"}";
}

std::ostream& operator<<(std::ostream& os, const UserPassStatus& m) {
  return os << "UserPassStatus{" << unsigned{m.status} << '}';
}

std::ostream& operator<<(std::ostream& os, const Socks5Request& m) {
  return os << "Socks5Request{" << describe(m.command) << ' ' << m.destination << '}';
}

std::ostream& operator<<(std::ostream& os, const Socks5Response& m) {
  return os << "Socks5Response{" << describe(m.code) << ' ' << m.bound << '}';
}

std::ostream& operator<<(std::ostream& os, const UdpHeader& m) {
  return os << "UdpHeader{frag=" << unsigned{m.fragment} << ' ' << m.address << '}';
}

}  // namespace tunsocks::socks

namespace tunsocks::socks::test {

Bytes hex(std::string_view text) {
  Bytes out;
  std::size_t at = 0;
  while (at < text.size()) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data() + at, text.data() + text.size(), value, 16);
    if (ec != std::errc{} || value > 0xFF || end != text.data() + at + 2) {
      throw std::invalid_argument("test vector is not a list of hex bytes");
    }
    out.push_back(static_cast<std::uint8_t>(value));
    at += 2;
  }
  return out;
}

Bytes text(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

Bytes repeat(std::uint8_t byte, std::size_t count) {
  return Bytes(count, byte);
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts)
    out.insert(out.end(), part.begin(), part.end());
  return out;
}

std::string name_of_length(std::size_t length) {
  return std::string(length, 'a');
}

}  // namespace tunsocks::socks::test
