#include "server/session.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/log.h"
#include "server/server.h"

namespace tunsocks::server {
namespace {

// Client bytes kept while the destination is being reached (pipelined after the request);
// reading from the client pauses above this instead of buffering more.
constexpr std::size_t kMaxPipelined = 64 * 1024;
// How long a refused client gets to read its failure reply and close, after our FIN.
constexpr std::uint64_t kLingerMs = 2000;
// A CONNECT tries every address of a name; each attempt gets at least this much of the
// connect timeout (when that much is left), so one black-holed address cannot eat it all
// and starve the rest, nor can N addresses shrink each attempt to nothing.
constexpr std::uint64_t kMinAttemptMs = 2000;

std::uint64_t to_ms(double seconds) {
  if (seconds <= 0) return 0;
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(seconds * 1000.0)));
}

config::Command to_config(socks::Command command) {
  switch (command) {
    case socks::Command::connect:
      return config::Command::connect;
    case socks::Command::bind:
      return config::Command::bind;
    case socks::Command::udp_associate:
      return config::Command::udp_associate;
  }
  return config::Command::connect;
}

socks::Address to_socks_address(const net::Endpoint& endpoint) {
  net::IpAddress ip = endpoint.ip.unmapped();
  if (ip.is_v4()) {
    auto b = ip.bytes();
    return socks::Address::ipv4({b[0], b[1], b[2], b[3]}, endpoint.port);
  }
  std::array<std::uint8_t, 16> raw{};
  std::copy(ip.bytes().begin(), ip.bytes().end(), raw.begin());
  return socks::Address::ipv6(raw, endpoint.port);
}

std::optional<net::IpAddress> to_ip(const socks::Address& address) {
  if (address.type == socks::AddressType::ipv4) {
    return net::IpAddress::v4({address.ip[0], address.ip[1], address.ip[2], address.ip[3]});
  }
  if (address.type == socks::AddressType::ipv6) return net::IpAddress::v6(address.ip).unmapped();
  return std::nullopt;
}

// The local address the kernel would use to reach `destination`: connect() on a UDP
// socket picks a route and a source address without sending anything.
std::optional<net::IpAddress> route_source(const net::IpAddress& destination) {
  int fd = ::socket(destination.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_storage to = destination.to_sockaddr(9);
  std::optional<net::IpAddress> result;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&to),
                net::sockaddr_length(reinterpret_cast<const sockaddr*>(&to))) == 0) {
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0) {
      result = net::IpAddress::from_sockaddr(reinterpret_cast<const sockaddr*>(&local));
    }
  }
  ::close(fd);
  return result;
}

bool printable_name(std::string_view name) {
  return std::all_of(name.begin(), name.end(), [](char c) {
    auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
  });
}

}  // namespace

std::string_view to_string(EndReason reason) {
  switch (reason) {
    case EndReason::eof:
      return "eof";
    case EndReason::reset:
      return "reset";
    case EndReason::client_closed:
      return "client_closed";
    case EndReason::idle_timeout:
      return "idle_timeout";
    case EndReason::handshake_timeout:
      return "handshake_timeout";
    case EndReason::auth_failed:
      return "auth_failed";
    case EndReason::no_acceptable_method:
      return "no_acceptable_method";
    case EndReason::protocol_error:
      return "protocol_error";
    case EndReason::denied:
      return "denied";
    case EndReason::unsupported:
      return "unsupported";
    case EndReason::resolve_failed:
      return "resolve_failed";
    case EndReason::connect_failed:
      return "connect_failed";
    case EndReason::bind_timeout:
      return "bind_timeout";
    case EndReason::limit:
      return "limit";
    case EndReason::error:
      return "error";
    case EndReason::shutdown:
      return "shutdown";
  }
  return "error";
}

socks::Socks5Reply reply_for_connect_error(int uv_error) {
  switch (uv_error) {
    case UV_ECONNREFUSED:
      return socks::Socks5Reply::connection_refused;
    case UV_ENETUNREACH:
    case UV_EAFNOSUPPORT:  // no IPv6 (or IPv4) on this host
      return socks::Socks5Reply::network_unreachable;
    case UV_EHOSTUNREACH:
    case UV_EHOSTDOWN:
      return socks::Socks5Reply::host_unreachable;
    case UV_ETIMEDOUT:
      // RFC 1928 has no "timed out"; 0x06 "TTL expired" is what Dante and others send.
      return socks::Socks5Reply::ttl_expired;
    default:
      return socks::Socks5Reply::general_failure;
  }
}

struct Session::Lookup {
  uv_getaddrinfo_t req{};
  Session* session = nullptr;
};

struct Session::AuthWork {
  uv_work_t req{};
  Session* session = nullptr;
  const Authenticator* authenticator = nullptr;
  std::string user;
  std::string password;
  bool accepted = false;

  ~AuthWork() {
    volatile char* p = password.data();
    for (std::size_t i = 0; i < password.size(); ++i)
      p[i] = 0;
  }
};

struct Session::ControlWrite {
  uv_write_t req{};
  Session* session = nullptr;
  socks::Bytes bytes;
};

Session::Session(Server& server, std::uint64_t id, net::UvHandle<uv_tcp_t> client,
                 const ListenerInfo& listener, net::Endpoint peer)
    : server_(server),
      loop_(server.loop()),
      id_(id),
      listener_(listener),
      peer_(peer),
      started_ms_(uv_now(server.loop())),
      client_(std::move(client)),
      handshake_(server.authenticator().required()),
      relay_(*this, server.pool(), Relay::configured_splice_after()) {
  retain();  // the client handle
}

Session::~Session() {
  assert(refs_ == 0);
}

void Session::start() {
  client_.get()->data = this;
  uv_tcp_nodelay(client_.get(), 1);
  if (timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) < 0) {
    close(EndReason::error, CloseMode::abort);
    return;
  }
  retain();
  timer_.get()->data = this;
  TS_LOG_DEBUG("sid=%llu open client=%s listener=%s", static_cast<unsigned long long>(id_),
               peer_.to_string().c_str(), listener_.address.to_string().c_str());
  arm_timer(server_.config().limits.handshake_timeout_s);
  int rc = uv_read_start(client_.stream(), &Session::on_alloc, &Session::on_client_read);
  if (rc < 0) {
    close(EndReason::error, CloseMode::abort);
    return;
  }
  client_reading_ = true;
}

// ---------------------------------------------------------------------------------------
// Trampolines

void Session::on_alloc(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  auto* self = static_cast<Session*>(handle->data);
  net::BufferPool& pool = self->server_.pool();
  buf->base = pool.acquire();
  buf->len = pool.block_size();
}

void Session::on_client_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  static_cast<Session*>(stream->data)->client_read(nread, buf);
}

void Session::on_linger_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  static_cast<Session*>(stream->data)->linger_read(nread, buf);
}

void Session::on_timer(uv_timer_t* timer) {
  static_cast<Session*>(timer->data)->timer_fired();
}

void Session::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result) {
  auto* lookup = static_cast<Lookup*>(req->data);
  Session* self = lookup->session;
  self->lookup_ = nullptr;
  delete lookup;
  self->resolved(status, result);
  self->release();
}

void Session::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<Session*>(req->data);
  self->connected(status);
  self->release();
}

void Session::on_bind_connection(uv_stream_t* server, int status) {
  static_cast<Session*>(server->data)->bind_connection(status);
}

void Session::on_control_written(uv_write_t* req, int /*status*/) {
  // A failed write shows up on the read side too; there is nothing else to do here.
  auto* write = static_cast<ControlWrite*>(req->data);
  Session* self = write->session;
  delete write;
  self->release();
}

void Session::on_client_shutdown(uv_shutdown_t* req, int /*status*/) {
  auto* self = static_cast<Session*>(req->data);
  if (self->client_eof_) self->finish_linger();
  self->release();
}

void Session::on_auth_work(uv_work_t* req) {
  auto* work = static_cast<AuthWork*>(req->data);
  work->accepted = work->authenticator->verify(work->user, work->password);
}

void Session::on_auth_done(uv_work_t* req, int status) {
  auto* work = static_cast<AuthWork*>(req->data);
  Session* self = work->session;
  bool accepted = status == 0 && work->accepted;
  self->auth_ = nullptr;
  delete work;
  if (!self->closing_) self->auth_finished(accepted);
  self->release();
}

void Session::on_handle_closed(void* session) {
  static_cast<Session*>(session)->release();
}

// ---------------------------------------------------------------------------------------
// Handshake

void Session::client_read(ssize_t nread, const uv_buf_t* buf) {
  net::PooledBuffer block(server_.pool(), buf->base);
  if (closing_) return;
  if (nread > 0) {
    if (phase_ == Phase::udp) return;  // nothing is defined on the control connection now
    auto step = handshake_.feed(socks::ByteView(reinterpret_cast<const std::uint8_t*>(block.data()),
                                                static_cast<std::size_t>(nread)));
    if (phase_ == Phase::handshake) {
      handle_step(step);
    } else if (handshake_.buffered_size() >= kMaxPipelined) {
      // Busy (checking a password, resolving, connecting): the client may send ahead,
      // but only so much; TCP holds the rest. 64 KiB always contains a whole request.
      uv_read_stop(client_.stream());
      client_reading_ = false;
    }
    return;
  }
  if (nread == 0) return;
  client_reading_ = false;
  if (nread == UV_EOF) {
    client_eof_ = true;
    switch (phase_) {
      case Phase::handshake:
      case Phase::authenticating:
        close(EndReason::client_closed, CloseMode::abort);
        return;
      case Phase::udp:
        // The association lives as long as its control connection (RFC 1928 section 7).
        close(EndReason::eof, CloseMode::abort);
        return;
      default:
        return;  // a half-close after the request: relayed once the destination is there
    }
  }
  close(phase_ == Phase::udp ? EndReason::reset : EndReason::client_closed, CloseMode::abort);
}

void Session::handle_step(Handshake::Step step) {
  // When the client sent its credentials or its request right behind the greeting, the
  // answers so far (method selection, auth status) stay queued and leave in one write
  // with the next answer: one send and one wake-up of the client instead of two or
  // three. Such a client waits for that last answer anyway. A client that waits for each
  // answer gets it at once (need_more).
  if (step == Handshake::Step::need_more || step == Handshake::Step::failed) {
    flush_handshake_output();
  }
  switch (step) {
    case Handshake::Step::need_more:
      return;
    case Handshake::Step::authenticate:
      if (phase_ == Phase::authenticating) return;  // the verdict is already on its way
      phase_ = Phase::authenticating;
      authenticate();
      return;
    case Handshake::Step::request:
      request();
      return;
    case Handshake::Step::failed:
      break;
  }
  EndReason reason = EndReason::protocol_error;
  switch (handshake_.failure()) {
    case HandshakeFailure::auth_failed:
      reason = EndReason::auth_failed;
      ++server_.counters().auth_failures;
      break;
    case HandshakeFailure::no_acceptable_method:
      reason = EndReason::no_acceptable_method;
      if (server_.authenticator().required()) ++server_.counters().auth_failures;
      break;
    case HandshakeFailure::protocol_error:
    case HandshakeFailure::none:
      break;
  }
  TS_LOG_DEBUG("sid=%llu handshake failed: %s", static_cast<unsigned long long>(id_),
               handshake_.failure_detail().c_str());
  close(reason, CloseMode::graceful);
}

void Session::authenticate() {
  const Authenticator& authenticator = server_.authenticator();
  const socks::UserPassRequest& credentials = handshake_.credentials();
  if (!authenticator.is_slow(credentials.user)) {
    auth_finished(authenticator.verify(credentials.user, credentials.password));
    return;
  }
  auto* work = new AuthWork;
  work->req.data = work;
  work->session = this;
  work->authenticator = &authenticator;
  work->user = credentials.user;
  work->password = credentials.password;
  if (uv_queue_work(loop_, &work->req, &Session::on_auth_work, &Session::on_auth_done) < 0) {
    delete work;
    auth_finished(false);
    return;
  }
  auth_ = work;
  retain();
}

void Session::auth_finished(bool accepted) {
  if (!accepted) {
    TS_LOG_WARN("sid=%llu authentication failed for user %s from %s",
                static_cast<unsigned long long>(id_),
                net::log_token(handshake_.credentials().user).c_str(), peer_.to_string().c_str());
  }
  auto step = handshake_.auth_result(accepted);
  phase_ = Phase::handshake;
  handle_step(step);
}

void Session::flush_handshake_output() {
  if (handshake_.has_output()) send_to_client(handshake_.take_output());
}

void Session::send_to_client(socks::Bytes bytes) {
  if (!client_ || bytes.empty()) return;
  // A reply is a few bytes: the kernel nearly always takes it at once, and then no request,
  // no heap block and no writable-event bookkeeping in libuv (an epoll_ctl per reply) are
  // needed. uv_try_write refuses while earlier writes are queued, so order holds.
  uv_buf_t first =
      uv_buf_init(reinterpret_cast<char*>(bytes.data()), static_cast<unsigned int>(bytes.size()));
  int sent = uv_try_write(client_.stream(), &first, 1);
  if (sent > 0 && static_cast<std::size_t>(sent) == bytes.size()) return;
  if (sent < 0 && sent != UV_EAGAIN) return;  // the read side reports a broken client
  if (sent > 0) bytes.erase(bytes.begin(), bytes.begin() + sent);
  auto* write = new ControlWrite;
  write->req.data = write;
  write->session = this;
  write->bytes = std::move(bytes);
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(write->bytes.data()),
                             static_cast<unsigned int>(write->bytes.size()));
  if (uv_write(&write->req, client_.stream(), &buf, 1, &Session::on_control_written) < 0) {
    delete write;  // the callback will never run: the request is still ours
    return;
  }
  retain();
}

// ---------------------------------------------------------------------------------------
// Request

RequestFacts Session::facts() const {
  RequestFacts f;
  f.command = to_config(handshake_.command());
  f.client = peer_.ip.unmapped();
  f.user = handshake_.user();
  f.domain = domain_;
  const socks::Address& destination = handshake_.destination();
  if (handshake_.command() != socks::Command::udp_associate) {
    // UDP ASSOCIATE's DST names the client's own UDP port, not a destination.
    f.port = destination.port;
    if (auto ip = to_ip(destination); ip && !(handshake_.command() == socks::Command::bind &&
                                              classify(*ip) == net::AddressClass::unspecified)) {
      f.address = *ip;
    }
  }
  return f;
}

void Session::request() {
  uv_timer_stop(timer_.get());
  const socks::Address& destination = handshake_.destination();
  dst_text_ = net::log_token(socks::to_string(destination));
  if (destination.type == socks::AddressType::domain) {
    if (!printable_name(destination.domain)) {
      // A NUL would cut the name the resolver sees short of the name the rules saw.
      fail_request(socks::Socks5Reply::general_failure, EndReason::protocol_error);
      return;
    }
    domain_ = config::normalize_domain(destination.domain);
  }
  if (handshake_.command() == socks::Command::bind && !server_.config().enable_bind) {
    TS_LOG_DEBUG("sid=%llu BIND refused: disabled (--enable-bind)",
                 static_cast<unsigned long long>(id_));
    fail_request(socks::Socks5Reply::command_not_supported, EndReason::unsupported);
    return;
  }

  Decision decision = server_.policy().decide(facts(), !listener_.loopback_only);
  if (decision.denied()) {
    deny(decision);
    return;
  }
  switch (handshake_.command()) {
    case socks::Command::udp_associate:
      start_udp();
      return;
    case socks::Command::connect:
    case socks::Command::bind:
      break;
  }
  if (!domain_.empty()) {
    resolve();
    return;
  }
  auto ip = to_ip(destination);
  if (!ip) {
    fail_request(socks::Socks5Reply::address_type_not_supported, EndReason::protocol_error);
    return;
  }
  if (handshake_.command() == socks::Command::bind &&
      classify(*ip) == net::AddressClass::unspecified) {
    // "Any peer": each connecting peer is judged when it arrives.
    start_bind();
    return;
  }
  targets_decided({*ip});
}

void Session::deny(const Decision& decision) {
  ++server_.counters().denied;
  TS_LOG_WARN("sid=%llu denied %s %s for client %s user %s: %s",
              static_cast<unsigned long long>(id_),
              std::string(config::to_string(to_config(handshake_.command()))).c_str(),
              dst_text_.c_str(), peer_.to_string().c_str(),
              net::log_token(handshake_.user()).c_str(), decision.reason.c_str());
  fail_request(socks::Socks5Reply::not_allowed, EndReason::denied);
}

void Session::fail_request(socks::Socks5Reply code, EndReason reason) {
  handshake_.reply(code, socks::Address::ipv4({}, 0));
  flush_handshake_output();
  close(reason, CloseMode::graceful);
}

void Session::resolve() {
  phase_ = Phase::resolving;
  deadline_ms_ = uv_now(loop_) + to_ms(server_.config().limits.connect_timeout_s);
  arm_timer_ms(deadline_ms_ - uv_now(loop_));
  auto* lookup = new Lookup;
  lookup->req.data = lookup;
  lookup->session = this;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  // The name as the client sent it (a final dot keeps its meaning for the resolver).
  const std::string& name = handshake_.destination().domain;
  int rc =
      uv_getaddrinfo(loop_, &lookup->req, &Session::on_resolved, name.c_str(), nullptr, &hints);
  if (rc < 0) {
    delete lookup;
    ++server_.counters().resolve_failures;
    fail_request(socks::Socks5Reply::host_unreachable, EndReason::resolve_failed);
    return;
  }
  lookup_ = lookup;
  retain();
}

void Session::resolved(int status, addrinfo* result) {
  if (closing_) {
    uv_freeaddrinfo(result);
    return;
  }
  if (status < 0) {
    uv_freeaddrinfo(result);
    ++server_.counters().resolve_failures;
    TS_LOG_DEBUG("sid=%llu cannot resolve %s: %s", static_cast<unsigned long long>(id_),
                 dst_text_.c_str(), net::uv_error_message(status).c_str());
    fail_request(socks::Socks5Reply::host_unreachable, EndReason::resolve_failed);
    return;
  }
  std::vector<net::IpAddress> addresses;
  for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    auto ip = net::IpAddress::from_sockaddr(ai->ai_addr);
    if (!ip) continue;
    net::IpAddress unmapped = ip->unmapped();
    if (std::find(addresses.begin(), addresses.end(), unmapped) == addresses.end()) {
      addresses.push_back(unmapped);
    }
  }
  uv_freeaddrinfo(result);
  targets_decided(addresses);
}

void Session::targets_decided(const std::vector<net::IpAddress>& addresses) {
  // Every address is judged: a name that resolves to a public and a private address must
  // not reach the private one (DNS rebinding). Denied addresses are skipped; only when
  // none is left is the request denied.
  targets_.clear();
  std::optional<Decision> first_denial;
  RequestFacts f = facts();
  bool socks4 = handshake_.protocol() != Protocol::socks5;
  for (const net::IpAddress& ip : addresses) {
    if (socks4 && handshake_.command() == socks::Command::bind && !ip.is_v4()) continue;
    f.address = ip;
    Decision decision = server_.policy().decide(f, !listener_.loopback_only);
    if (decision.allowed()) {
      targets_.push_back(ip);
    } else if (!first_denial) {
      first_denial = std::move(decision);
    }
  }
  if (targets_.empty()) {
    if (first_denial) {
      deny(*first_denial);
    } else {
      ++server_.counters().resolve_failures;
      fail_request(socks::Socks5Reply::host_unreachable, EndReason::resolve_failed);
    }
    return;
  }
  if (handshake_.command() == socks::Command::bind) {
    start_bind();
  } else {
    start_connect();
  }
}

// ---------------------------------------------------------------------------------------
// CONNECT

void Session::start_connect() {
  phase_ = Phase::connecting;
  if (deadline_ms_ == 0) {
    deadline_ms_ = uv_now(loop_) + to_ms(server_.config().limits.connect_timeout_s);
  }
  next_target_ = 0;
  try_next_target();
}

void Session::try_next_target() {
  const std::uint16_t port = handshake_.destination().port;
  while (next_target_ < targets_.size()) {
    const net::IpAddress ip = targets_[next_target_++];
    std::uint64_t now = uv_now(loop_);
    if (now >= deadline_ms_) {
      last_error_ = UV_ETIMEDOUT;
      break;
    }
    int rc = target_.init([&](uv_tcp_t* t) { return uv_tcp_init(loop_, t); });
    if (rc < 0) {
      last_error_ = rc;
      continue;
    }
    retain();
    target_.get()->data = this;
    sockaddr_storage address = ip.to_sockaddr(port);
    connect_req_.data = this;
    rc = uv_tcp_connect(&connect_req_, target_.get(), reinterpret_cast<const sockaddr*>(&address),
                        &Session::on_connect);
    if (rc < 0) {
      last_error_ = rc;
      target_.close(&Session::on_handle_closed, this);
      continue;
    }
    retain();
    connect_pending_ = true;
    attempt_timed_out_ = false;
    std::uint64_t remaining = deadline_ms_ - now;
    std::size_t left = targets_.size() - next_target_ + 1;
    std::uint64_t attempt = remaining;
    if (left > 1) attempt = std::min(remaining, std::max(remaining / left, kMinAttemptMs));
    arm_timer_ms(attempt);
    return;
  }
  ++server_.counters().connect_failures;
  auto reply =
      last_error_ != 0 ? reply_for_connect_error(last_error_) : socks::Socks5Reply::general_failure;
  TS_LOG_DEBUG("sid=%llu connect %s failed: %s", static_cast<unsigned long long>(id_),
               dst_text_.c_str(), net::uv_error_name(last_error_).c_str());
  fail_request(reply, EndReason::connect_failed);
}

void Session::connect_attempt_timed_out() {
  if (!connect_pending_) return;
  attempt_timed_out_ = true;
  // Closing cancels the connect: on_connect runs with UV_ECANCELED and moves on.
  target_.close(&Session::on_handle_closed, this);
}

void Session::connected(int status) {
  connect_pending_ = false;
  if (closing_) return;
  if (status < 0) {
    last_error_ = status == UV_ECANCELED && attempt_timed_out_ ? UV_ETIMEDOUT : status;
    target_.close(&Session::on_handle_closed, this);
    try_next_target();
    return;
  }
  uv_timer_stop(timer_.get());
  sockaddr_storage local{};
  socks::Address bound = socks::Address::ipv4({}, 0);
  if (net::tcp_local_address(target_.get(), local)) {
    if (auto endpoint = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&local))) {
      bound = to_socks_address(*endpoint);
    }
  }
  // The client waits for this reply: it goes first, the socket option after it (it only
  // matters from the first relayed write on).
  handshake_.reply(socks::Socks5Reply::succeeded, bound);
  flush_handshake_output();
  uv_tcp_nodelay(target_.get(), 1);
  start_relay();
}

// ---------------------------------------------------------------------------------------
// BIND

std::optional<net::IpAddress> Session::local_ip() const {
  sockaddr_storage local{};
  if (!net::tcp_local_address(client_.get(), local)) return std::nullopt;
  auto endpoint = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&local));
  if (!endpoint) return std::nullopt;
  return endpoint->ip.unmapped();
}

void Session::start_bind() {
  phase_ = Phase::bind_waiting;
  bool socks4 = handshake_.protocol() != Protocol::socks5;
  // Listen where the expected peer can reach us: the source address of our route to it,
  // else the address the client reached us on.
  auto local = local_ip();
  if (!local) {
    fail_request(socks::Socks5Reply::general_failure, EndReason::error);
    return;
  }
  net::IpAddress ip = *local;
  if (!targets_.empty()) {
    if (auto source = route_source(targets_.front())) ip = source->unmapped();
  }
  if (socks4 && !ip.is_v4()) ip = net::IpAddress{};  // SOCKS4 replies carry IPv4 only
  int rc = bind_listener_.init([&](uv_tcp_t* t) {
    return uv_tcp_init_ex(loop_, t, static_cast<unsigned>(ip.is_v4() ? AF_INET : AF_INET6));
  });
  if (rc < 0) {
    fail_request(socks::Socks5Reply::general_failure, EndReason::error);
    return;
  }
  retain();
  bind_listener_.get()->data = this;
  sockaddr_storage address = ip.to_sockaddr(0);
  rc = uv_tcp_bind(bind_listener_.get(), reinterpret_cast<const sockaddr*>(&address),
                   ip.is_v6() ? UV_TCP_IPV6ONLY : 0);
  if (rc == 0) rc = uv_listen(bind_listener_.stream(), 8, &Session::on_bind_connection);
  sockaddr_storage bound{};
  if (rc == 0 && !net::tcp_local_address(bind_listener_.get(), bound)) rc = UV_EINVAL;
  auto endpoint = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&bound));
  if (rc < 0 || !endpoint) {
    TS_LOG_WARN("sid=%llu BIND: cannot listen on %s: %s", static_cast<unsigned long long>(id_),
                ip.to_string().c_str(), net::uv_error_message(rc).c_str());
    fail_request(socks::Socks5Reply::general_failure, EndReason::error);
    return;
  }
  TS_LOG_DEBUG("sid=%llu BIND listening on %s", static_cast<unsigned long long>(id_),
               endpoint->to_string().c_str());
  handshake_.reply(socks::Socks5Reply::succeeded, to_socks_address(*endpoint));
  flush_handshake_output();
  arm_timer(server_.config().limits.bind_timeout_s);
}

void Session::bind_connection(int status) {
  if (closing_ || phase_ != Phase::bind_waiting) return;
  if (status < 0) {
    fail_request(socks::Socks5Reply::general_failure, EndReason::error);
    return;
  }
  net::UvHandle<uv_tcp_t> peer;
  if (peer.init([&](uv_tcp_t* t) { return uv_tcp_init(loop_, t); }) < 0) return;
  retain();
  if (uv_accept(bind_listener_.stream(), peer.stream()) < 0) {
    peer.close(&Session::on_handle_closed, this);
    return;
  }
  sockaddr_storage address{};
  std::optional<net::Endpoint> endpoint;
  if (net::tcp_peer_address(peer.get(), address)) {
    endpoint = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&address));
  }
  bool acceptable = false;
  std::string why;
  if (endpoint) {
    net::IpAddress ip = endpoint->ip.unmapped();
    if (targets_.empty()) {
      RequestFacts f = facts();
      f.address = ip;
      Decision decision = server_.policy().decide(f, !listener_.loopback_only);
      acceptable = decision.allowed();
      why = decision.reason;
    } else {
      acceptable = std::find(targets_.begin(), targets_.end(), ip) != targets_.end();
      why = "not the host named in the request (" + dst_text_ + ")";
    }
  }
  if (!acceptable) {
    // RFC 1928 lets the server check the peer against DST.ADDR; a stranger is refused with
    // an RST and the BIND keeps waiting for the right host until bind_timeout_s.
    ++server_.counters().denied;
    TS_LOG_WARN("sid=%llu BIND: refused a connection from %s: %s",
                static_cast<unsigned long long>(id_),
                endpoint ? endpoint->to_string().c_str() : "?", why.c_str());
    peer.close_reset(&Session::on_handle_closed, this);
    return;
  }
  bind_listener_.close(&Session::on_handle_closed, this);  // one peer per BIND
  uv_timer_stop(timer_.get());
  target_ = std::move(peer);
  target_.get()->data = this;
  uv_tcp_nodelay(target_.get(), 1);
  handshake_.reply(socks::Socks5Reply::succeeded, to_socks_address(*endpoint));
  flush_handshake_output();
  start_relay();
}

// ---------------------------------------------------------------------------------------
// UDP ASSOCIATE

void Session::start_udp() {
  Counters& counters = server_.counters();
  if (counters.udp_associations_open >= server_.config().limits.max_udp_associations) {
    ++counters.limit_refusals;
    TS_LOG_WARN("sid=%llu UDP ASSOCIATE refused: max_udp_associations (%u) reached",
                static_cast<unsigned long long>(id_), server_.config().limits.max_udp_associations);
    fail_request(socks::Socks5Reply::general_failure, EndReason::limit);
    return;
  }
  UdpContext context;
  context.loop = loop_;
  context.shared = &server_.udp_shared();
  context.counters = &counters;
  context.policy = &server_.policy();
  context.protected_listener = !listener_.loopback_only;
  context.client_ip = peer_.ip.unmapped();
  context.user = handshake_.user();
  context.session_id = id_;
  auto local = local_ip();
  if (!local) {
    fail_request(socks::Socks5Reply::general_failure, EndReason::error);
    return;
  }
  UdpOwner& owner = *this;
  udp_ = std::make_unique<UdpAssociation>(owner, std::move(context));
  auto bound = udp_->open(*local, handshake_.destination().port);
  if (!bound) {
    TS_LOG_WARN("sid=%llu UDP ASSOCIATE: cannot open a socket on %s: %s",
                static_cast<unsigned long long>(id_), local->to_string().c_str(),
                net::uv_error_message(bound.error()).c_str());
    fail_request(socks::Socks5Reply::general_failure, EndReason::error);
    return;
  }
  ++counters.udp_associations_open;
  phase_ = Phase::udp;
  handshake_.reply(socks::Socks5Reply::succeeded, to_socks_address(*bound));
  flush_handshake_output();
  last_activity_ms_ = uv_now(loop_);
  double idle = server_.config().limits.udp_idle_timeout_s;
  if (idle > 0) arm_timer(idle);
  if (!client_reading_ && !client_eof_) {
    // Reading must go on: the association ends when the control connection closes.
    if (uv_read_start(client_.stream(), &Session::on_alloc, &Session::on_client_read) == 0) {
      client_reading_ = true;
    }
  } else if (client_eof_) {
    close(EndReason::eof, CloseMode::abort);
  }
}

// ---------------------------------------------------------------------------------------
// Relay

void Session::start_relay() {
  phase_ = Phase::relaying;
  if (client_reading_) {
    uv_read_stop(client_.stream());
    client_reading_ = false;
  }
  last_activity_ms_ = uv_now(loop_);
  double idle = server_.config().limits.idle_timeout_s;
  if (idle > 0) arm_timer(idle);
  relay_.start(client_.stream(), target_.stream(), handshake_.take_pipelined(), client_eof_);
}

void Session::relay_moved(RelaySide from, std::size_t bytes) {
  Counters& counters = server_.counters();
  if (from == RelaySide::client) {
    up_ += bytes;
    counters.bytes_up += bytes;
  } else {
    down_ += bytes;
    counters.bytes_down += bytes;
  }
  last_activity_ms_ = uv_now(loop_);
}

void Session::relay_spliced() {
  TS_LOG_DEBUG("sid=%llu relay spliced after up=%llu down=%llu",
               static_cast<unsigned long long>(id_), static_cast<unsigned long long>(up_),
               static_cast<unsigned long long>(down_));
}

void Session::relay_finished() {
  close(EndReason::eof, CloseMode::abort);
}

void Session::relay_failed(RelaySide side, int error) {
  TS_LOG_DEBUG("sid=%llu %s side failed: %s", static_cast<unsigned long long>(id_),
               side == RelaySide::client ? "client" : "destination",
               net::uv_error_name(error).c_str());
  bool reset = error == UV_ECONNRESET || error == UV_EPIPE || error == UV_ECONNABORTED ||
               error == UV_ETIMEDOUT;
  // The side that failed is already broken; the other one must see a reset, not a clean
  // FIN that would pass a truncated stream off as complete.
  close(reset ? EndReason::reset : EndReason::error, CloseMode::reset);
}

void Session::udp_moved(bool up, std::size_t bytes) {
  (up ? up_ : down_) += bytes;
  last_activity_ms_ = uv_now(loop_);
}

// ---------------------------------------------------------------------------------------
// Timers

void Session::arm_timer(double seconds) {
  arm_timer_ms(to_ms(seconds));
}

void Session::arm_timer_ms(std::uint64_t ms) {
  if (!timer_) return;
  uv_timer_start(timer_.get(), &Session::on_timer, ms, 0);
}

void Session::timer_fired() {
  if (phase_ == Phase::lingering) {
    finish_linger();
    return;
  }
  if (closing_) return;
  const config::Limits& limits = server_.config().limits;
  switch (phase_) {
    case Phase::handshake:
    case Phase::authenticating:
      ++server_.counters().handshake_timeouts;
      close(EndReason::handshake_timeout, CloseMode::abort);
      return;
    case Phase::resolving:
      ++server_.counters().resolve_failures;
      fail_request(socks::Socks5Reply::ttl_expired, EndReason::resolve_failed);
      return;
    case Phase::connecting:
      connect_attempt_timed_out();
      return;
    case Phase::bind_waiting:
      fail_request(socks::Socks5Reply::ttl_expired, EndReason::bind_timeout);
      return;
    case Phase::relaying:
    case Phase::udp: {
      std::uint64_t idle_ms =
          to_ms(phase_ == Phase::udp ? limits.udp_idle_timeout_s : limits.idle_timeout_s);
      std::uint64_t now = uv_now(loop_);
      std::uint64_t quiet = now - last_activity_ms_;
      if (quiet >= idle_ms) {
        ++server_.counters().idle_timeouts;
        close(EndReason::idle_timeout, CloseMode::abort);
      } else {
        // Re-armed from the last activity instead of on every byte: one timer start per
        // idle period, not one per read.
        arm_timer_ms(idle_ms - quiet);
      }
      return;
    }
    case Phase::lingering:
    case Phase::closed:
      return;
  }
}

// ---------------------------------------------------------------------------------------
// Teardown

void Session::close(EndReason reason, CloseMode mode) {
  if (closing_) return;
  closing_ = true;
  end_ = reason;
  log_end();
  server_.session_closed(*this);
  if (udp_) {
    if (phase_ == Phase::udp) --server_.counters().udp_associations_open;
    udp_->close();
  }
  relay_.stop();
  if (lookup_ != nullptr) uv_cancel(reinterpret_cast<uv_req_t*>(&lookup_->req));
  if (auth_ != nullptr) uv_cancel(reinterpret_cast<uv_req_t*>(&auth_->req));
  bind_listener_.close(&Session::on_handle_closed, this);
  if (mode == CloseMode::reset) {
    target_.close_reset(&Session::on_handle_closed, this);
  } else {
    target_.close(&Session::on_handle_closed, this);
  }

  if (mode == CloseMode::graceful && client_) {
    // Flush the failure reply, send our FIN, and read (discarding) until the client closes:
    // closing with unread bytes pending would send an RST that can destroy the reply
    // before the client reads it.
    phase_ = Phase::lingering;
    shutdown_req_.data = this;
    if (uv_shutdown(&shutdown_req_, client_.stream(), &Session::on_client_shutdown) == 0) {
      retain();
      if (!client_eof_) {
        client_.get()->data = this;
        uv_read_stop(client_.stream());
        if (uv_read_start(client_.stream(), &Session::on_alloc, &Session::on_linger_read) < 0) {
          finish_linger();
          return;
        }
      }
      arm_timer_ms(kLingerMs);
      return;
    }
    finish_linger();
    return;
  }
  phase_ = Phase::closed;
  if (mode == CloseMode::reset) {
    client_.close_reset(&Session::on_handle_closed, this);
  } else {
    client_.close(&Session::on_handle_closed, this);
  }
  timer_.close(&Session::on_handle_closed, this);
}

void Session::linger_read(ssize_t nread, const uv_buf_t* buf) {
  net::PooledBuffer block(server_.pool(), buf->base);  // discarded
  if (nread < 0) finish_linger();                      // EOF or error: the client is done
}

void Session::finish_linger() {
  if (phase_ == Phase::closed) return;
  phase_ = Phase::closed;
  client_.close(&Session::on_handle_closed, this);
  timer_.close(&Session::on_handle_closed, this);
}

void Session::release() {
  assert(refs_ > 0);
  --refs_;
  if (closing_ && refs_ == 0 && !retired_) {
    retired_ = true;
    server_.retire(*this);
  }
}

void Session::log_end() const {
  std::string cmd = "-";
  std::string dst = dst_text_;
  if (handshake_.has_request()) {
    cmd = config::to_string(to_config(handshake_.command()));
    if (dst == "-") dst = net::log_token(socks::to_string(handshake_.destination()));
  }
  TS_LOG_INFO(
      "session id=%llu client=%s user=%s proto=%s cmd=%s dst=%s reply=%s up=%llu down=%llu "
      "ms=%llu end=%s",
      static_cast<unsigned long long>(id_), peer_.to_string().c_str(),
      net::log_token(handshake_.user()).c_str(),
      std::string(to_string(handshake_.protocol())).c_str(), cmd.c_str(), dst.c_str(),
      std::string(handshake_.reply_name()).c_str(), static_cast<unsigned long long>(up_),
      static_cast<unsigned long long>(down_),
      static_cast<unsigned long long>(uv_now(loop_) - started_ms_),
      std::string(to_string(end_)).c_str());
}

}  // namespace tunsocks::server
