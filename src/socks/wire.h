// Internal to src/socks: the small vocabulary every parser and writer of the codec uses —
// version bytes, big-endian fields, "need more" and error results, and the ATYP/ADDR/PORT
// block shared by SOCKS5 requests, replies and UDP headers.
//
// The parsers are stateless: each call reads the buffer from its first byte. Messages are at
// most a few hundred bytes, so re-reading a growing buffer costs little, and no decision can
// be lost between calls. (In curl's CVE-2023-38545 a slow handshake re-entered the SOCKS5
// code, the earlier "name too long, resolve locally" decision was gone, and the long name
// was copied into a buffer sized for a short one.)
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

#include "socks/codec.h"

namespace tunsocks::socks::wire {

inline constexpr std::uint8_t kSocks4Version = 0x04;
inline constexpr std::uint8_t kSocks4ReplyVersion = 0x00;  // VN of a SOCKS4 reply
inline constexpr std::uint8_t kSocks5Version = 0x05;
inline constexpr std::uint8_t kUserPassVersion = 0x01;  // RFC 1929 sub-negotiation

// Reply codes carried by server-side errors.
inline constexpr auto kSocks4Rejected = static_cast<std::uint8_t>(Socks4Reply::rejected);
inline constexpr auto kGeneralFailure = static_cast<std::uint8_t>(Socks5Reply::general_failure);
inline constexpr auto kCommandNotSupported =
    static_cast<std::uint8_t>(Socks5Reply::command_not_supported);
inline constexpr auto kAddressTypeNotSupported =
    static_cast<std::uint8_t>(Socks5Reply::address_type_not_supported);
inline constexpr std::uint8_t kUserPassFailure = 0x01;  // RFC 1929: any non-zero STATUS

[[nodiscard]] inline std::uint16_t get_u16(ByteView in, std::size_t at) {
  assert(at + 2 <= in.size());
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

inline void put_u16(std::span<std::uint8_t> out, std::size_t at, std::uint16_t value) {
  assert(at + 2 <= out.size());
  out[at] = static_cast<std::uint8_t>(value >> 8);
  out[at + 1] = static_cast<std::uint8_t>(value & 0xFF);
}

inline void append_u16(Bytes& out, std::uint16_t value) {
  out.push_back(static_cast<std::uint8_t>(value >> 8));
  out.push_back(static_cast<std::uint8_t>(value & 0xFF));
}

inline void append_text(Bytes& out, std::string_view text) {
  out.insert(out.end(), text.begin(), text.end());
}

[[nodiscard]] inline std::string_view as_text(ByteView bytes) {
  // uint8_t and char may alias; the codec treats names as opaque bytes.
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// `least_total` is the smallest size the message can have, given the bytes read so far.
template <class Message>
[[nodiscard]] ParseResult<Message> need_more(std::size_t least_total, std::size_t have) {
  assert(least_total > have);
  return Parsed<Message>{std::nullopt, 0, least_total - have};
}

template <class Message>
[[nodiscard]] ParseResult<Message> complete(Message message, std::size_t size) {
  return Parsed<Message>{std::move(message), size, 0};
}

[[nodiscard]] inline std::unexpected<Error> fail(Errc code, std::size_t offset, std::uint8_t reply,
                                                 std::string_view field) {
  return std::unexpected(Error{code, offset, reply, field});
}

// Writers report no offset and no reply code.
[[nodiscard]] inline std::unexpected<Error> refuse(Errc code, std::string_view field) {
  return fail(code, 0, 0, field);
}

// How ATYP/ADDR/PORT problems are reported: field names and the reply codes to carry.
struct AddressContext {
  std::string_view address_field;  // "DST.ADDR" or "BND.ADDR"
  std::string_view port_field;
  std::uint8_t bad_type_reply;  // server side: address type not supported
  std::uint8_t bad_name_reply;  // server side: general failure (empty domain)
};

inline constexpr AddressContext kRequestAddress{"DST.ADDR", "DST.PORT", kAddressTypeNotSupported,
                                                kGeneralFailure};
inline constexpr AddressContext kReplyAddress{"BND.ADDR", "BND.PORT", 0, 0};
inline constexpr AddressContext kDatagramAddress{"DST.ADDR", "DST.PORT", 0, 0};

struct AddressRead {
  std::optional<Address> address;  // set once the whole block is present
  std::size_t end = 0;             // offset after DST.PORT; if incomplete, the least it can be
  std::string_view short_field;    // if incomplete: the first field not wholly present
};

// Reads ATYP, ADDR and PORT starting at offset `at` of a message (at <= in.size()). Error
// offsets are offsets in `in`. Never reads past the block.
[[nodiscard]] std::expected<AddressRead, Error> read_address(ByteView in, std::size_t at,
                                                             const AddressContext& context);

// Refuses what cannot be encoded: an unknown type, a domain that is empty or over 255 bytes.
[[nodiscard]] std::expected<void, Error> check_encodable(const Address& address,
                                                         std::string_view field);

// Writes the block into the first encoded_size(address) bytes of `out` (checked by the
// caller, as is check_encodable).
void put_address(const Address& address, std::span<std::uint8_t> out);

// Appends the block (check_encodable passed).
void append_address(const Address& address, Bytes& out);

}  // namespace tunsocks::socks::wire
