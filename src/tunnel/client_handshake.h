// The client side of a SOCKS handshake as a state machine over bytes (no I/O): what tunsocks
// says to its upstream before a flow's bytes can be relayed. The session feeds it what the
// upstream sent and sends what it hands out, until it reports success or a typed failure.
//
// Supports SOCKS5 (no auth or RFC 1929 username/password), SOCKS4 (IPv4 destinations) and
// SOCKS4a (names). Bytes that arrive after the final reply are the flow's first payload and
// are left to the caller (a server may send its reply and data in one segment).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/endpoint.h"
#include "socks/codec.h"

namespace tunsocks::tunnel {

enum class SocksVersion : std::uint8_t { socks4, socks5 };

// An IP endpoint in the form SOCKS requests carry it (ATYP 1 or 4).
[[nodiscard]] socks::Address socks_address(const net::Endpoint& endpoint);

struct Credentials {
  std::string user;
  std::string password;
  friend bool operator==(const Credentials&, const Credentials&) = default;
};

struct HandshakeOptions {
  SocksVersion version = SocksVersion::socks5;
  std::optional<Credentials> credentials;  // SOCKS5: offers RFC 1929; SOCKS4: USERID = user
  // SOCKS5: send the credentials (if any) and the request right behind the greeting
  // instead of waiting a round trip for each answer. RFC 1928 does not forbid it and socksd
  // and Dante accept it, but microsocks drops the bytes behind the greeting and waits for a
  // request that never comes (the flow would end in connect_timeout): tunsocks turns it on
  // for an upstream that answered such a request when probed (src/apps/tunsocks/upstream_probe.h).
  bool pipeline_request = false;
};

// Why a handshake ended without a tunnel; `reply` says what the upstream answered, if it did.
enum class HandshakeFailure : std::uint8_t {
  protocol_error,        // the upstream sent bytes the protocol does not allow
  no_acceptable_method,  // SOCKS5 method selection 0xFF, or one we did not offer
  auth_rejected,         // RFC 1929 status != 0
  request_rejected,      // the final reply is not success (see reply codes)
  unsupported,           // the request cannot be expressed (IPv6 over SOCKS4, bad name)
};
std::string_view describe(HandshakeFailure failure);

class ClientHandshake {
 public:
  enum class Status : std::uint8_t { in_progress, succeeded, failed };

  ClientHandshake(HandshakeOptions options, socks::Command command, socks::Address destination);

  // The bytes to send to the upstream now; empty when waiting for the upstream.
  [[nodiscard]] socks::Bytes take_output();

  // Feeds bytes received from the upstream, each byte once: the bytes of a message cut
  // short by the read are kept here until the rest arrives. Returns how many bytes of
  // `input` the handshake used (all of them while in progress); once status() is
  // succeeded, bytes beyond that belong to the relayed flow.
  std::size_t feed(socks::ByteView input);

  [[nodiscard]] Status status() const { return status_; }
  [[nodiscard]] HandshakeFailure failure() const { return failure_; }
  // The last reply code seen: SOCKS5 REP, or the SOCKS4 code (0x5A..0x5D); nullopt before.
  [[nodiscard]] std::optional<std::uint8_t> reply_code() const { return reply_code_; }
  // A readable reply for logs: "succeeded", "connection refused", "rejected", ...
  [[nodiscard]] std::string reply_text() const;
  // BND.ADDR / BND.PORT of the final reply (the upstream's outbound socket, or for UDP
  // ASSOCIATE the relay to send datagrams to).
  [[nodiscard]] const socks::Address& bound() const { return bound_; }
  // Context for a failure log line (parse error, offset).
  [[nodiscard]] const std::string& detail() const { return detail_; }

 private:
  enum class Step : std::uint8_t { method_selection, auth_status, socks5_reply, socks4_reply };

  void start();
  void queue_credentials();
  void queue_request();
  void fail(HandshakeFailure failure, std::string detail);
  // Parses one message for the current step: a parse error fails the handshake, an
  // incomplete message waits for more bytes (0 used), a complete one goes to `handle`.
  template <class Message, class Handle>
  std::size_t take(socks::ParseResult<Message> parsed, Handle handle);
  void on_method_selection(const socks::Socks5MethodSelection& selection);
  void on_auth_status(const socks::UserPassStatus& status);
  void finish_request(std::uint8_t code, bool granted, std::string_view text,
                      const socks::Address& bound);

  HandshakeOptions options_;
  socks::Command command_;
  socks::Address destination_;
  socks::Bytes output_;
  socks::Bytes partial_;  // upstream bytes of a message not yet complete
  Step step_ = Step::method_selection;
  Status status_ = Status::in_progress;
  HandshakeFailure failure_ = HandshakeFailure::protocol_error;
  bool credentials_sent_ = false;
  bool request_sent_ = false;
  std::optional<std::uint8_t> reply_code_;
  socks::Address bound_;
  std::string detail_;
};

}  // namespace tunsocks::tunnel
