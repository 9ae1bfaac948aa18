// The SOCKS protocol as pure code: SOCKS4, SOCKS4a, SOCKS5 (RFC 1928), username/password
// authentication (RFC 1929) and the SOCKS5 UDP request header. No sockets, no event loop:
// bytes in, typed messages out, and typed messages in, bytes out. Both sides of every
// exchange are here, because tunsocks is a SOCKS client and socksd a SOCKS server.
//
// Parsers are incremental. Given a buffer that holds the start of a message they report how
// many more bytes are needed at least and consume nothing; given a complete message they
// return it with the number of bytes it used, and never look past it (pipelined bytes that
// follow belong to the caller). Invalid input is an Error saying what was wrong, where, and
// (for the server side) which reply code to send before closing.
//
// Writers append to a byte vector and refuse, rather than truncate, anything the RFCs do
// not allow (a domain over 255 bytes, an empty user name field that cannot be encoded...).
// A refused message leaves the output untouched. Nothing here throws (beyond allocation).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tunsocks::socks {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// ---------------------------------------------------------------------------------------
// Errors

enum class Errc : std::uint8_t {
  bad_version,       // first byte is not the protocol version this message needs
  bad_reserved,      // a reserved byte is not zero
  bad_command,       // CMD not CONNECT, BIND or UDP ASSOCIATE (or not allowed in SOCKS4)
  bad_address_type,  // ATYP not 1, 3 or 4
  empty_domain,      // a domain name of length 0
  field_too_long,    // a NUL-terminated or length-prefixed field exceeds its limit
  bad_auth_version,  // RFC 1929 sub-negotiation version is not 1
  bad_reply_code,    // a reply code the protocol does not define (client side)
  bad_method,        // a method selection the client did not offer / cannot exist
  truncated,         // a datagram ends inside its header (datagrams cannot "need more")
  embedded_nul,      // a string that must go in a NUL-terminated field contains NUL
  buffer_too_small,  // a fixed-size output buffer cannot hold the message
  empty_field,       // writers: a field the RFC requires non-empty (UNAME, METHODS) is empty
};

// A readable, stable name for logs: "bad address type", "field too long", ...
std::string_view describe(Errc code);

// `reply` is what a server sends before closing: the SOCKS4 CD (0x5B) for SOCKS4 requests,
// the SOCKS5 REP for SOCKS5 requests (0x07 bad command, 0x08 bad address type, 0x01 for the
// rest), the RFC 1929 STATUS (0x01) for username/password requests. A greeting has no reply
// code (0: close without answering); client-side parsers, datagrams and writers leave it 0.
// `offset` is where the offending byte is (for a truncated datagram: its size; writers: 0).
struct Error {
  Errc code;
  std::size_t offset = 0;  // byte offset in the input where the problem was found
  std::uint8_t reply = 0;  // server side: the reply code to send before closing (0 = none)
  std::string_view field;  // the message field concerned, e.g. "ATYP", "USERID"

  friend bool operator==(const Error&, const Error&) = default;
};

// "bad address type (ATYP at byte 3)", for logs.
std::string to_string(const Error& error);

// The outcome of feeding a parser a buffer that may hold a partial message.
template <class Message>
struct Parsed {
  std::optional<Message> message;  // set once a whole message was read
  std::size_t consumed = 0;        // bytes the message used; 0 while incomplete
  std::size_t missing = 0;         // while incomplete: at least this many more bytes

  [[nodiscard]] bool complete() const { return message.has_value(); }
};

template <class Message>
using ParseResult = std::expected<Parsed<Message>, Error>;

// ---------------------------------------------------------------------------------------
// Addresses as the protocol carries them

enum class AddressType : std::uint8_t { ipv4 = 0x01, domain = 0x03, ipv6 = 0x04 };

inline constexpr std::size_t kMaxDomainLength = 255;

struct Address {
  AddressType type = AddressType::ipv4;
  std::array<std::uint8_t, 16> ip{};  // network order; only the first 4 bytes for IPv4
  std::string domain;                 // for AddressType::domain: 1..255 bytes, not resolved
  std::uint16_t port = 0;             // host order

  static Address ipv4(std::array<std::uint8_t, 4> bytes, std::uint16_t port);
  static Address ipv6(std::array<std::uint8_t, 16> bytes, std::uint16_t port);
  static Address name(std::string domain, std::uint16_t port);

  friend bool operator==(const Address&, const Address&) = default;
};

// "1.2.3.4:80", "[2001:db8::1]:443", "example.com:443" (non-printable bytes escaped).
std::string to_string(const Address& address);

// The ATYP + DST.ADDR + DST.PORT encoding shared by SOCKS5 requests, replies and UDP;
// 0 for an address the writers refuse (unknown type, domain empty or over 255 bytes).
std::size_t encoded_size(const Address& address);

enum class Command : std::uint8_t { connect = 0x01, bind = 0x02, udp_associate = 0x03 };
std::string_view describe(Command command);

// ---------------------------------------------------------------------------------------
// SOCKS4 and SOCKS4a

// Limits on the NUL-terminated fields, which the protocol leaves unbounded; a peer that
// never sends the NUL is cut off here instead of growing our buffers.
inline constexpr std::size_t kMaxSocks4UserId = 255;

enum class Socks4Reply : std::uint8_t {
  granted = 0x5A,
  rejected = 0x5B,
  no_identd = 0x5C,        // never sent by socksd (no identd), accepted from servers
  identd_mismatch = 0x5D,  // likewise
};
std::string_view describe(Socks4Reply code);
// The reply as one log token: "granted", "rejected", "no_identd", "identd_mismatch".
std::string_view reply_token(Socks4Reply code);

struct Socks4Request {
  Command command = Command::connect;  // CONNECT or BIND only
  std::uint16_t port = 0;
  std::array<std::uint8_t, 4> ip{};  // 0.0.0.x with x != 0 marks SOCKS4a
  std::string user_id;               // may be empty
  std::string domain;                // SOCKS4a only; empty for plain SOCKS4

  [[nodiscard]] bool is_socks4a() const { return !domain.empty(); }
  // The destination as an Address: the domain for SOCKS4a, the IPv4 address otherwise.
  [[nodiscard]] Address destination() const;

  friend bool operator==(const Socks4Request&, const Socks4Request&) = default;
};

struct Socks4Response {
  Socks4Reply code = Socks4Reply::granted;
  std::uint16_t port = 0;
  std::array<std::uint8_t, 4> ip{};

  friend bool operator==(const Socks4Response&, const Socks4Response&) = default;
};

// Server side reads requests; client side reads responses.
[[nodiscard]] ParseResult<Socks4Request> parse_socks4_request(ByteView input);
[[nodiscard]] ParseResult<Socks4Response> parse_socks4_response(ByteView input);
// A SOCKS4a request is written when `domain` is set (DSTIP becomes 0.0.0.1, unless `ip` is
// already a 0.0.0.x marker, which is kept so that parse and write round-trip exactly).
// Refused: a command other than CONNECT/BIND, a NUL inside user_id or domain, either over
// 255 bytes, and a 0.0.0.x `ip` without a domain (the server would wait for one).
[[nodiscard]] std::expected<void, Error> write_socks4_request(const Socks4Request& request,
                                                              Bytes& out);
void write_socks4_response(const Socks4Response& response, Bytes& out);

// ---------------------------------------------------------------------------------------
// SOCKS5 (RFC 1928) and username/password authentication (RFC 1929)

namespace method {
inline constexpr std::uint8_t no_auth = 0x00;
inline constexpr std::uint8_t gssapi = 0x01;
inline constexpr std::uint8_t user_pass = 0x02;
inline constexpr std::uint8_t no_acceptable = 0xFF;
}  // namespace method

struct Socks5Greeting {
  std::vector<std::uint8_t> methods;  // NMETHODS may be 0: the server then answers 0xFF

  [[nodiscard]] bool offers(std::uint8_t m) const;
  friend bool operator==(const Socks5Greeting&, const Socks5Greeting&) = default;
};

struct Socks5MethodSelection {
  std::uint8_t method = method::no_auth;
  friend bool operator==(const Socks5MethodSelection&, const Socks5MethodSelection&) = default;
};

inline constexpr std::size_t kMaxCredentialLength = 255;

struct UserPassRequest {
  std::string user;      // 1..255 bytes on the wire; the parser also accepts 0 (and says so)
  std::string password;  // 0..255 bytes
  friend bool operator==(const UserPassRequest&, const UserPassRequest&) = default;
};

struct UserPassStatus {
  std::uint8_t status = 0;  // 0 = success, anything else = failure (RFC 1929)
  [[nodiscard]] bool ok() const { return status == 0; }
  friend bool operator==(const UserPassStatus&, const UserPassStatus&) = default;
};

enum class Socks5Reply : std::uint8_t {
  succeeded = 0x00,
  general_failure = 0x01,
  not_allowed = 0x02,
  network_unreachable = 0x03,
  host_unreachable = 0x04,
  connection_refused = 0x05,
  ttl_expired = 0x06,
  command_not_supported = 0x07,
  address_type_not_supported = 0x08,
};
std::string_view describe(Socks5Reply code);
// The reply as one log token, the enumerator's name: "succeeded", "connection_refused", ...
std::string_view reply_token(Socks5Reply code);

struct Socks5Request {
  Command command = Command::connect;
  Address destination;
  friend bool operator==(const Socks5Request&, const Socks5Request&) = default;
};

struct Socks5Response {
  Socks5Reply code = Socks5Reply::succeeded;
  Address bound;  // BND.ADDR / BND.PORT; may be a domain when it comes from a server
  friend bool operator==(const Socks5Response&, const Socks5Response&) = default;
};

// Server side.
[[nodiscard]] ParseResult<Socks5Greeting> parse_socks5_greeting(ByteView input);
[[nodiscard]] ParseResult<UserPassRequest> parse_user_pass_request(ByteView input);
[[nodiscard]] ParseResult<Socks5Request> parse_socks5_request(ByteView input);
void write_socks5_method_selection(const Socks5MethodSelection& selection, Bytes& out);
void write_user_pass_status(const UserPassStatus& status, Bytes& out);
[[nodiscard]] std::expected<void, Error> write_socks5_response(const Socks5Response& response,
                                                               Bytes& out);

// Client side.
[[nodiscard]] std::expected<void, Error> write_socks5_greeting(const Socks5Greeting& greeting,
                                                               Bytes& out);
[[nodiscard]] std::expected<void, Error> write_user_pass_request(const UserPassRequest& request,
                                                                 Bytes& out);
[[nodiscard]] std::expected<void, Error> write_socks5_request(const Socks5Request& request,
                                                              Bytes& out);
[[nodiscard]] ParseResult<Socks5MethodSelection> parse_socks5_method_selection(ByteView input);
[[nodiscard]] ParseResult<UserPassStatus> parse_user_pass_status(ByteView input);
[[nodiscard]] ParseResult<Socks5Response> parse_socks5_response(ByteView input);
// The parser returns whatever method a server picked; this says whether the pick is legal
// for what was offered: an offered method, or 0xFF (no acceptable methods, which the caller
// still has to treat as a refusal). Anything else is Errc::bad_method.
[[nodiscard]] std::expected<void, Error> check_method_selection(
    const Socks5Greeting& offered, const Socks5MethodSelection& selection);

// ---------------------------------------------------------------------------------------
// The SOCKS5 UDP request header: RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA.
// A datagram arrives whole, so a short one is an error (Errc::truncated), not "need more".

struct UdpHeader {
  std::uint8_t fragment = 0;  // 0 = standalone datagram; relays drop anything else
  Address address;            // client → relay: destination; relay → client: the source
  friend bool operator==(const UdpHeader&, const UdpHeader&) = default;
};

struct UdpDatagram {
  UdpHeader header;
  ByteView payload;  // points into the parsed input
};

[[nodiscard]] std::expected<UdpDatagram, Error> parse_udp_datagram(ByteView datagram);
// Writes the header into `out` (for callers that reserve headroom in front of a payload);
// returns the number of bytes written.
[[nodiscard]] std::expected<std::size_t, Error> write_udp_header(const UdpHeader& header,
                                                                 std::span<std::uint8_t> out);
[[nodiscard]] std::expected<void, Error> append_udp_header(const UdpHeader& header, Bytes& out);

}  // namespace tunsocks::socks
