// The server side of a SOCKS handshake as a state machine over bytes ("sans I/O"): no
// sockets, no loop, no clock. The caller feeds whatever chunks the client sent (one byte
// at a time or everything at once, pipelined messages included), sends what output()
// holds, and acts on the step it gets back. That keeps the protocol logic testable byte
// by byte and fuzzable, and keeps the session code about I/O only.
//
// The version is detected from the first byte: 0x04 SOCKS4/4a, 0x05 SOCKS5, anything else
// is not SOCKS and is closed without an answer.
//
//   SOCKS5: greeting → method selection → [RFC 1929 user/password → status] → request
//   SOCKS4: request (SOCKS4a when DSTIP is 0.0.0.x); no authentication exists, so a
//           server that requires users answers 0x5B.
//
// After Step::request the caller decides (rules, resolution, connect) and encodes its
// answer with reply(), in the client's own protocol. Bytes that arrive after the request
// are kept for the destination (take_pipelined()), never parsed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "socks/codec.h"

namespace tunsocks::server {

enum class Protocol : std::uint8_t { unknown, socks4, socks4a, socks5 };
// "socks4", "socks4a", "socks5", or "-" while unknown (the session log's proto= values).
[[nodiscard]] std::string_view to_string(Protocol protocol);

// Why a handshake failed.
enum class HandshakeFailure : std::uint8_t {
  none,
  protocol_error,        // bytes that are not the protocol (or not SOCKS at all)
  no_acceptable_method,  // SOCKS5 greeting without a method we accept (answered 0xFF)
  auth_failed,           // wrong credentials, or SOCKS4 where users are required
};

class Handshake {
 public:
  enum class Step : std::uint8_t {
    need_more,     // send output(), then wait for more bytes
    authenticate,  // send output(); check credentials(), then call auth_result()
    request,       // send output(); act on the request, answer with reply()
    failed,        // send output() (possibly empty), then close; failure() says why
  };

  explicit Handshake(bool require_auth) : require_auth_(require_auth) {}

  // Appends client bytes and advances as far as they allow.
  Step feed(socks::ByteView bytes);
  [[nodiscard]] Step step() const { return step_; }

  // After Step::authenticate: the verdict on credentials(). The password is wiped from
  // memory here either way.
  Step auth_result(bool accepted);

  [[nodiscard]] const socks::UserPassRequest& credentials() const { return credentials_; }
  [[nodiscard]] Protocol protocol() const { return protocol_; }
  // A request was parsed (also when it was then refused, as SOCKS4 is where users are
  // required): command() and destination() are meaningful.
  [[nodiscard]] bool has_request() const { return has_request_; }
  [[nodiscard]] socks::Command command() const { return command_; }
  [[nodiscard]] const socks::Address& destination() const { return destination_; }
  // The RFC 1929 user once authenticated; empty otherwise (SOCKS4's USERID is not an
  // authenticated identity and is kept apart).
  [[nodiscard]] const std::string& user() const { return user_; }
  [[nodiscard]] const std::string& socks4_user_id() const { return socks4_user_id_; }

  [[nodiscard]] HandshakeFailure failure() const { return failure_; }
  // What was wrong, for a debug log line ("bad address type (ATYP at byte 3)").
  [[nodiscard]] const std::string& failure_detail() const { return failure_detail_; }

  // Encodes the answer to the request in the client's protocol: SOCKS5 sends `code` and
  // `bound`; SOCKS4 sends 0x5A for success and 0x5B for anything else, with `bound` when
  // it is IPv4. May be called twice (BIND's second reply).
  void reply(socks::Socks5Reply code, const socks::Address& bound);
  // The last reply as the session log names it: "succeeded", "connection_refused", ...,
  // also for SOCKS4, whose 0x5B would hide why a request failed; "-" before any reply.
  [[nodiscard]] std::string_view reply_name() const { return reply_name_; }

  // Bytes to send to the client; the caller takes them (the buffer is left empty).
  [[nodiscard]] socks::Bytes take_output();
  [[nodiscard]] bool has_output() const { return !output_.empty(); }
  // Client bytes received after the request: they belong to the destination.
  [[nodiscard]] socks::Bytes take_pipelined();
  [[nodiscard]] std::size_t pipelined_size() const;
  // Client bytes held but not yet consumed, whatever the state (for flow control while
  // the caller is busy, e.g. checking a password).
  [[nodiscard]] std::size_t buffered_size() const { return input_.size(); }

 private:
  enum class State : std::uint8_t {
    start,
    greeting,
    user_pass,
    awaiting_auth,
    socks5_request,
    socks4_request,
    done,
    failed,
  };

  Step advance();
  Step fail(HandshakeFailure why, std::string detail);
  Step fail_parse(const socks::Error& error, std::string_view message);
  void consume(std::size_t n);
  [[nodiscard]] socks::ByteView unread() const;

  bool require_auth_;
  State state_ = State::start;
  Step step_ = Step::need_more;
  Protocol protocol_ = Protocol::unknown;
  socks::Bytes input_;
  socks::Bytes output_;

  socks::UserPassRequest credentials_;
  std::string user_;
  std::string socks4_user_id_;
  bool has_request_ = false;
  socks::Command command_ = socks::Command::connect;
  socks::Address destination_;

  HandshakeFailure failure_ = HandshakeFailure::none;
  std::string failure_detail_;
  std::string_view reply_name_ = "-";
};

}  // namespace tunsocks::server
