#include "server/handshake.h"

#include <algorithm>
#include <cstdio>

namespace tunsocks::server {
namespace {

constexpr std::uint8_t kSocks4Version = 0x04;
constexpr std::uint8_t kSocks5Version = 0x05;

void wipe(std::string& secret) {
  // volatile stores so the compiler cannot drop the zeroing of a string about to be freed.
  volatile char* p = secret.data();
  for (std::size_t i = 0; i < secret.size(); ++i)
    p[i] = 0;
  secret.clear();
}

}  // namespace

std::string_view to_string(Protocol protocol) {
  switch (protocol) {
    case Protocol::socks4:
      return "socks4";
    case Protocol::socks4a:
      return "socks4a";
    case Protocol::socks5:
      return "socks5";
    case Protocol::unknown:
      break;
  }
  return "-";
}

Handshake::Step Handshake::feed(socks::ByteView bytes) {
  if (state_ == State::failed) return step_;  // whatever follows a failure is ignored
  input_.insert(input_.end(), bytes.begin(), bytes.end());
  step_ = advance();
  return step_;
}

Handshake::Step Handshake::auth_result(bool accepted) {
  if (state_ != State::awaiting_auth) return step_;
  wipe(credentials_.password);
  socks::write_user_pass_status(socks::UserPassStatus{accepted ? std::uint8_t{0} : std::uint8_t{1}},
                                output_);
  if (!accepted) {
    step_ = fail(HandshakeFailure::auth_failed, "wrong user name or password");
    return step_;
  }
  user_ = credentials_.user;
  state_ = State::socks5_request;
  step_ = advance();
  return step_;
}

void Handshake::reply(socks::Socks5Reply code, const socks::Address& bound) {
  if (protocol_ == Protocol::socks5) {
    socks::Address address = bound;
    if (address.type == socks::AddressType::domain) address = socks::Address::ipv4({}, 0);
    if (!socks::write_socks5_response(socks::Socks5Response{code, address}, output_)) {
      // Only an undefined code or an unencodable address can be refused; neither is
      // produced here, but the client must still get an answer.
      (void)socks::write_socks5_response(
          socks::Socks5Response{socks::Socks5Reply::general_failure, socks::Address::ipv4({}, 0)},
          output_);
    }
    reply_name_ = socks::reply_token(code);
    return;
  }
  socks::Socks4Response response;
  response.code = code == socks::Socks5Reply::succeeded ? socks::Socks4Reply::granted
                                                        : socks::Socks4Reply::rejected;
  if (bound.type == socks::AddressType::ipv4) {
    response.port = bound.port;
    std::copy_n(bound.ip.begin(), 4, response.ip.begin());
  }
  socks::write_socks4_response(response, output_);
  // SOCKS4 can only say 0x5A or 0x5B; the log keeps what actually happened.
  reply_name_ = socks::reply_token(code);
}

socks::Bytes Handshake::take_output() {
  socks::Bytes out;
  out.swap(output_);
  return out;
}

socks::Bytes Handshake::take_pipelined() {
  if (state_ != State::done) return {};
  socks::Bytes out;
  out.swap(input_);
  return out;
}

std::size_t Handshake::pipelined_size() const {
  return state_ == State::done ? input_.size() : 0;
}

socks::ByteView Handshake::unread() const {
  return socks::ByteView(input_);
}

void Handshake::consume(std::size_t n) {
  // The consumed bytes may hold a password: zero them before the vector forgets them.
  std::fill_n(input_.begin(), n, std::uint8_t{0});
  input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(n));
}

Handshake::Step Handshake::fail(HandshakeFailure why, std::string detail) {
  state_ = State::failed;
  failure_ = why;
  failure_detail_ = std::move(detail);
  std::fill(input_.begin(), input_.end(), std::uint8_t{0});
  input_.clear();
  wipe(credentials_.password);
  return Step::failed;
}

Handshake::Step Handshake::fail_parse(const socks::Error& error, std::string_view message) {
  return fail(HandshakeFailure::protocol_error,
              std::string(message) + ": " + socks::to_string(error));
}

Handshake::Step Handshake::advance() {
  for (;;) {
    switch (state_) {
      case State::start: {
        if (input_.empty()) return Step::need_more;
        std::uint8_t version = input_[0];
        if (version == kSocks5Version) {
          protocol_ = Protocol::socks5;
          state_ = State::greeting;
        } else if (version == kSocks4Version) {
          protocol_ = Protocol::socks4;
          state_ = State::socks4_request;
        } else {
          char detail[48];
          std::snprintf(detail, sizeof detail, "not SOCKS (first byte 0x%02x)", version);
          return fail(HandshakeFailure::protocol_error, detail);
        }
        break;
      }

      case State::greeting: {
        auto parsed = socks::parse_socks5_greeting(unread());
        if (!parsed) return fail_parse(parsed.error(), "bad greeting");
        if (!parsed->complete()) return Step::need_more;
        consume(parsed->consumed);
        const socks::Socks5Greeting& greeting = *parsed->message;
        // With users configured only RFC 1929 is acceptable: offering no-auth as well
        // must not let a client skip the password.
        std::uint8_t wanted = require_auth_ ? socks::method::user_pass : socks::method::no_auth;
        if (!greeting.offers(wanted)) {
          socks::write_socks5_method_selection({socks::method::no_acceptable}, output_);
          return fail(HandshakeFailure::no_acceptable_method,
                      require_auth_ ? "client does not offer username/password (0x02)"
                                    : "client does not offer no-authentication (0x00)");
        }
        socks::write_socks5_method_selection({wanted}, output_);
        state_ = require_auth_ ? State::user_pass : State::socks5_request;
        break;
      }

      case State::user_pass: {
        auto parsed = socks::parse_user_pass_request(unread());
        if (!parsed) {
          if (parsed.error().reply != 0) {
            socks::write_user_pass_status({parsed.error().reply}, output_);
          }
          return fail_parse(parsed.error(), "bad username/password request");
        }
        if (!parsed->complete()) return Step::need_more;
        credentials_ = std::move(*parsed->message);
        consume(parsed->consumed);
        state_ = State::awaiting_auth;
        return Step::authenticate;
      }

      case State::awaiting_auth:
        return Step::authenticate;  // bytes arriving meanwhile wait for the verdict

      case State::socks5_request: {
        auto parsed = socks::parse_socks5_request(unread());
        if (!parsed) {
          if (parsed.error().reply != 0) {
            reply(static_cast<socks::Socks5Reply>(parsed.error().reply),
                  socks::Address::ipv4({}, 0));
          }
          return fail_parse(parsed.error(), "bad request");
        }
        if (!parsed->complete()) return Step::need_more;
        has_request_ = true;
        command_ = parsed->message->command;
        destination_ = std::move(parsed->message->destination);
        consume(parsed->consumed);
        state_ = State::done;
        return Step::request;
      }

      case State::socks4_request: {
        auto parsed = socks::parse_socks4_request(unread());
        if (!parsed) {
          if (parsed.error().reply != 0) reply(socks::Socks5Reply::general_failure, {});
          return fail_parse(parsed.error(), "bad SOCKS4 request");
        }
        if (!parsed->complete()) return Step::need_more;
        const socks::Socks4Request& request = *parsed->message;
        protocol_ = request.is_socks4a() ? Protocol::socks4a : Protocol::socks4;
        has_request_ = true;
        command_ = request.command;
        destination_ = request.destination();
        socks4_user_id_ = request.user_id;
        consume(parsed->consumed);
        if (require_auth_) {
          // SOCKS4 has no way to carry a password; its USERID proves nothing.
          reply(socks::Socks5Reply::not_allowed, {});
          return fail(HandshakeFailure::auth_failed,
                      "SOCKS4 cannot authenticate and this server requires users");
        }
        state_ = State::done;
        return Step::request;
      }

      case State::done:
        return Step::request;

      case State::failed:
        return Step::failed;
    }
  }
}

}  // namespace tunsocks::server
