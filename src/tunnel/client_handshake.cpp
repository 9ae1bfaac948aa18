#include "tunnel/client_handshake.h"

#include <algorithm>
#include <utility>

namespace tunsocks::tunnel {
namespace {

using socks::Address;
using socks::AddressType;
using socks::ByteView;

std::string parse_error_text(const socks::Error& error) {
  std::string text(socks::describe(error.code));
  if (!error.field.empty()) text += " in " + std::string(error.field);
  text += " at byte " + std::to_string(error.offset);
  return text;
}

}  // namespace

socks::Address socks_address(const net::Endpoint& endpoint) {
  const auto bytes = endpoint.ip.bytes();
  if (endpoint.ip.is_v4()) {
    return socks::Address::ipv4({bytes[0], bytes[1], bytes[2], bytes[3]}, endpoint.port);
  }
  std::array<std::uint8_t, 16> ipv6{};
  std::copy(bytes.begin(), bytes.end(), ipv6.begin());
  return socks::Address::ipv6(ipv6, endpoint.port);
}

std::string_view describe(HandshakeFailure failure) {
  switch (failure) {
    case HandshakeFailure::protocol_error:
      return "protocol error";
    case HandshakeFailure::no_acceptable_method:
      return "no acceptable method";
    case HandshakeFailure::auth_rejected:
      return "authentication rejected";
    case HandshakeFailure::request_rejected:
      return "request rejected";
    case HandshakeFailure::unsupported:
      return "request not expressible";
  }
  return "unknown";
}

ClientHandshake::ClientHandshake(HandshakeOptions options, socks::Command command,
                                 socks::Address destination)
    : options_(std::move(options)), command_(command), destination_(std::move(destination)) {
  start();
}

void ClientHandshake::start() {
  if (options_.version == SocksVersion::socks4) {
    step_ = Step::socks4_reply;
    socks::Socks4Request request;
    request.command = command_;
    request.port = destination_.port;
    if (options_.credentials) request.user_id = options_.credentials->user;
    if (command_ == socks::Command::udp_associate) {
      return fail(HandshakeFailure::unsupported, "SOCKS4 has no UDP ASSOCIATE");
    }
    switch (destination_.type) {
      case AddressType::ipv4:
        std::copy_n(destination_.ip.begin(), 4, request.ip.begin());
        break;
      case AddressType::domain:
        request.domain = destination_.domain;  // written as SOCKS4a
        break;
      case AddressType::ipv6:
        return fail(HandshakeFailure::unsupported, "SOCKS4 cannot carry an IPv6 destination");
    }
    if (auto written = socks::write_socks4_request(request, output_); !written) {
      return fail(HandshakeFailure::unsupported,
                  std::string(socks::describe(written.error().code)));
    }
    request_sent_ = true;
    return;
  }

  socks::Socks5Greeting greeting;
  greeting.methods.push_back(options_.credentials ? socks::method::user_pass
                                                  : socks::method::no_auth);
  if (auto written = socks::write_socks5_greeting(greeting, output_); !written) {
    return fail(HandshakeFailure::unsupported, std::string(socks::describe(written.error().code)));
  }
  step_ = Step::method_selection;
  if (!options_.pipeline_request) return;
  if (options_.credentials) queue_credentials();
  queue_request();
}

void ClientHandshake::queue_credentials() {
  if (credentials_sent_) return;
  socks::UserPassRequest auth{options_.credentials->user, options_.credentials->password};
  if (auto written = socks::write_user_pass_request(auth, output_); !written) {
    return fail(HandshakeFailure::unsupported, std::string(socks::describe(written.error().code)));
  }
  credentials_sent_ = true;
}

void ClientHandshake::queue_request() {
  if (request_sent_) return;
  socks::Socks5Request request{command_, destination_};
  if (auto written = socks::write_socks5_request(request, output_); !written) {
    return fail(HandshakeFailure::unsupported, std::string(socks::describe(written.error().code)));
  }
  request_sent_ = true;
}

socks::Bytes ClientHandshake::take_output() {
  return std::exchange(output_, {});
}

std::size_t ClientHandshake::feed(ByteView input) {
  if (status_ != Status::in_progress) return 0;
  // TCP may cut a message anywhere: the bytes of an incomplete one wait here, because
  // callers hand over each read once and reuse their buffer.
  const std::size_t held = partial_.size();
  partial_.insert(partial_.end(), input.begin(), input.end());
  const ByteView bytes(partial_);
  std::size_t used = 0;
  while (status_ == Status::in_progress && used < bytes.size()) {
    const ByteView rest = bytes.subspan(used);
    std::size_t step_used = 0;
    switch (step_) {
      case Step::method_selection:
        step_used = take(socks::parse_socks5_method_selection(rest),
                         [this](const auto& message) { on_method_selection(message); });
        break;
      case Step::auth_status:
        step_used = take(socks::parse_user_pass_status(rest),
                         [this](const auto& message) { on_auth_status(message); });
        break;
      case Step::socks5_reply:
        step_used = take(socks::parse_socks5_response(rest), [this](const auto& reply) {
          finish_request(static_cast<std::uint8_t>(reply.code),
                         reply.code == socks::Socks5Reply::succeeded, socks::describe(reply.code),
                         reply.bound);
        });
        break;
      case Step::socks4_reply:
        step_used = take(socks::parse_socks4_response(rest), [this](const auto& reply) {
          finish_request(static_cast<std::uint8_t>(reply.code),
                         reply.code == socks::Socks4Reply::granted, socks::describe(reply.code),
                         Address::ipv4(reply.ip, reply.port));
        });
        break;
    }
    if (step_used == 0) break;  // incomplete (or failed without consuming)
    used += step_used;
  }
  if (status_ == Status::in_progress) {
    // Everything is taken; an incomplete message's bytes stay for the next call. Its
    // size is bounded: a parser fails a message before its longest possible form ends.
    partial_.erase(partial_.begin(), partial_.begin() + static_cast<std::ptrdiff_t>(used));
    return input.size();
  }
  partial_.clear();
  partial_.shrink_to_fit();
  // Held bytes began a message that has now ended, so `used` covers them all.
  return used >= held ? used - held : 0;
}

template <class Message, class Handle>
std::size_t ClientHandshake::take(socks::ParseResult<Message> parsed, Handle handle) {
  if (!parsed) {
    fail(HandshakeFailure::protocol_error, parse_error_text(parsed.error()));
    return 0;
  }
  if (!parsed->complete()) return 0;
  handle(*parsed->message);
  return parsed->consumed;
}

void ClientHandshake::on_method_selection(const socks::Socks5MethodSelection& selection) {
  const std::uint8_t chosen = selection.method;
  const std::uint8_t offered =
      options_.credentials ? socks::method::user_pass : socks::method::no_auth;
  if (chosen != offered) {
    reply_code_ = chosen;
    return fail(HandshakeFailure::no_acceptable_method,
                chosen == socks::method::no_acceptable ? "server accepts none of our methods"
                                                       : "server chose a method we did not offer");
  }
  if (chosen == socks::method::user_pass) {
    queue_credentials();
    if (status_ == Status::in_progress) step_ = Step::auth_status;
    return;
  }
  queue_request();
  step_ = Step::socks5_reply;
}

void ClientHandshake::on_auth_status(const socks::UserPassStatus& status) {
  if (!status.ok()) {
    reply_code_ = status.status;
    return fail(HandshakeFailure::auth_rejected, "status " + std::to_string(status.status));
  }
  queue_request();
  step_ = Step::socks5_reply;
}

void ClientHandshake::finish_request(std::uint8_t code, bool granted, std::string_view text,
                                     const socks::Address& bound) {
  reply_code_ = code;
  if (!granted) return fail(HandshakeFailure::request_rejected, std::string(text));
  status_ = Status::succeeded;
  bound_ = bound;
}

void ClientHandshake::fail(HandshakeFailure failure, std::string detail) {
  status_ = Status::failed;
  failure_ = failure;
  detail_ = std::move(detail);
  output_.clear();
}

std::string ClientHandshake::reply_text() const {
  if (!reply_code_) return "-";
  switch (step_) {
    case Step::socks4_reply:
      return std::string(socks::reply_token(static_cast<socks::Socks4Reply>(*reply_code_)));
    case Step::socks5_reply:
      return std::string(socks::reply_token(static_cast<socks::Socks5Reply>(*reply_code_)));
    case Step::method_selection:
      return "no_acceptable_method";
    case Step::auth_status:
      return "auth_failed";
  }
  return "-";
}

}  // namespace tunsocks::tunnel
