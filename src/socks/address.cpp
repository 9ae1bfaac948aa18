// The SOCKS5 address block: ATYP, then 4 bytes (IPv4), a length byte and a name (domain),
// or 16 bytes (IPv6), then the port in network order (RFC 1928, section 5).
#include <algorithm>
#include <cstring>
#include <utility>

#include "socks/codec.h"
#include "socks/wire.h"

namespace tunsocks::socks {

namespace {

constexpr std::size_t kIpv4Size = 4;
constexpr std::size_t kIpv6Size = 16;
constexpr std::size_t kPortSize = 2;
// A domain of one byte: ATYP, LEN, one byte, PORT.
constexpr std::size_t kShortestBlock = 1 + 1 + 1 + kPortSize;

}  // namespace

Address Address::ipv4(std::array<std::uint8_t, 4> bytes, std::uint16_t port) {
  Address address;
  address.type = AddressType::ipv4;
  std::copy(bytes.begin(), bytes.end(), address.ip.begin());
  address.port = port;
  return address;
}

Address Address::ipv6(std::array<std::uint8_t, 16> bytes, std::uint16_t port) {
  Address address;
  address.type = AddressType::ipv6;
  address.ip = bytes;
  address.port = port;
  return address;
}

Address Address::name(std::string domain, std::uint16_t port) {
  Address address;
  address.type = AddressType::domain;
  address.domain = std::move(domain);
  address.port = port;
  return address;
}

std::size_t encoded_size(const Address& address) {
  switch (address.type) {
    case AddressType::ipv4:
      return 1 + kIpv4Size + kPortSize;
    case AddressType::ipv6:
      return 1 + kIpv6Size + kPortSize;
    case AddressType::domain:
      if (address.domain.empty() || address.domain.size() > kMaxDomainLength) return 0;
      return 1 + 1 + address.domain.size() + kPortSize;
  }
  return 0;
}

namespace wire {

std::expected<AddressRead, Error> read_address(ByteView in, std::size_t at,
                                               const AddressContext& context) {
  assert(at <= in.size());
  if (in.size() == at) return AddressRead{std::nullopt, at + kShortestBlock, "ATYP"};

  const std::uint8_t atyp = in[at];
  std::size_t address_size = 0;  // bytes between ATYP and PORT
  switch (atyp) {
    case static_cast<std::uint8_t>(AddressType::ipv4):
      address_size = kIpv4Size;
      break;
    case static_cast<std::uint8_t>(AddressType::ipv6):
      address_size = kIpv6Size;
      break;
    case static_cast<std::uint8_t>(AddressType::domain): {
      if (in.size() == at + 1) {
        return AddressRead{std::nullopt, at + kShortestBlock, context.address_field};
      }
      const std::uint8_t length = in[at + 1];
      if (length == 0) {
        return fail(Errc::empty_domain, at + 1, context.bad_name_reply, context.address_field);
      }
      address_size = 1 + std::size_t{length};
      break;
    }
    default:
      return fail(Errc::bad_address_type, at, context.bad_type_reply, "ATYP");
  }

  const std::size_t port_at = at + 1 + address_size;
  const std::size_t end = port_at + kPortSize;
  if (in.size() < port_at) return AddressRead{std::nullopt, end, context.address_field};
  if (in.size() < end) return AddressRead{std::nullopt, end, context.port_field};

  const std::uint16_t port = get_u16(in, port_at);
  const ByteView body = in.subspan(at + 1, address_size);
  switch (static_cast<AddressType>(atyp)) {
    case AddressType::ipv4: {
      std::array<std::uint8_t, kIpv4Size> ip{};
      std::copy(body.begin(), body.end(), ip.begin());
      return AddressRead{Address::ipv4(ip, port), end, {}};
    }
    case AddressType::ipv6: {
      std::array<std::uint8_t, kIpv6Size> ip{};
      std::copy(body.begin(), body.end(), ip.begin());
      return AddressRead{Address::ipv6(ip, port), end, {}};
    }
    case AddressType::domain:
      return AddressRead{Address::name(std::string(as_text(body.subspan(1))), port), end, {}};
  }
  return fail(Errc::bad_address_type, at, context.bad_type_reply, "ATYP");  // not reached
}

std::expected<void, Error> check_encodable(const Address& address, std::string_view field) {
  switch (address.type) {
    case AddressType::ipv4:
    case AddressType::ipv6:
      return {};
    case AddressType::domain:
      if (address.domain.empty()) return refuse(Errc::empty_domain, field);
      if (address.domain.size() > kMaxDomainLength) return refuse(Errc::field_too_long, field);
      return {};
  }
  return refuse(Errc::bad_address_type, "ATYP");
}

void put_address(const Address& address, std::span<std::uint8_t> out) {
  [[maybe_unused]] const std::size_t size = encoded_size(address);
  assert(size != 0 && size <= out.size());
  out[0] = static_cast<std::uint8_t>(address.type);
  std::size_t at = 1;
  switch (address.type) {
    case AddressType::ipv4:
      std::copy_n(address.ip.begin(), kIpv4Size, out.begin() + 1);
      at += kIpv4Size;
      break;
    case AddressType::ipv6:
      std::copy_n(address.ip.begin(), kIpv6Size, out.begin() + 1);
      at += kIpv6Size;
      break;
    case AddressType::domain:
      out[1] = static_cast<std::uint8_t>(address.domain.size());
      std::memcpy(out.data() + 2, address.domain.data(), address.domain.size());
      at += 1 + address.domain.size();
      break;
  }
  put_u16(out, at, address.port);
}

void append_address(const Address& address, Bytes& out) {
  const std::size_t before = out.size();
  out.resize(before + encoded_size(address));
  put_address(address, std::span(out).subspan(before));
}

}  // namespace wire
}  // namespace tunsocks::socks
