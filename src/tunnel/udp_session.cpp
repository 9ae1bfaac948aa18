#include "tunnel/udp_session.h"

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "net/log.h"
#include "net/socket_buffers.h"

namespace tunsocks::tunnel {
namespace {

// The largest payload of one UDP datagram over IPv4 (65535 - 20 - 8); the SOCKS header
// travels inside it, so header + payload must fit.
constexpr std::size_t kMaxRelayPayload = 65507;
// Sends the kernel would not take at once wait in libuv; beyond this many, drop (UDP may).
constexpr std::size_t kMaxSendsInFlight = 64;
constexpr std::size_t kMaxRead = 64 * 1024;
// The relay socket reads with recvmmsg (UV_UDP_RECVMMSG): libuv splits the read buffer into
// 64 KiB slots (its largest datagram) and takes as many datagrams per call as there are
// slots, up to 20. One call instead of one per datagram when a burst is waiting. Four fill
// the host's read buffer (256 KiB, sized for TCP reads of four 64 KiB segments).
constexpr std::size_t kRelayReadSlots = 4;
// Each way of the relay socket: ~2500 small datagrams (the kernel doubles it), 50 ms at
// 50000/s, where the default holds a few ms (see net/socket_buffers.h).
constexpr std::size_t kRelaySocketBuffer = 1024 * 1024;
// RSV + FRAG + ATYP + port: the SOCKS UDP header around the destination's address bytes.
constexpr std::size_t kSocksUdpHeader = 3 + 1 + 2;
constexpr std::uint16_t kDnsPort = 53;
// Fake-ip names and IP destinations remembered per association, for mapping replies back.
constexpr std::size_t kMaxNamed = 16;
constexpr std::size_t kMaxDirect = 16;

// A handshake write or a send the kernel could not take at once; owns its bytes.
struct ControlWrite {
  uv_write_t request{};
  UdpSession* session = nullptr;
  socks::Bytes bytes;
};
struct RelaySend {
  uv_udp_send_t request{};
  UdpSession* session = nullptr;
  socks::Bytes bytes;
};

UdpSession* session_of(void* data) {
  return static_cast<UdpSession*>(data);
}

void on_connect(uv_connect_t* request, int status) {
  session_of(request->data)->on_connected(status);
}
void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
  *buffer = session_of(handle->data)->alloc_buffer();
}
void on_relay_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
  *buffer = session_of(handle->data)->relay_buffer();
}
void on_control_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
  session_of(stream->data)->on_control_read(nread, buffer);
}
void on_control_write(uv_write_t* request, int status) {
  std::unique_ptr<ControlWrite> write(static_cast<ControlWrite*>(request->data));
  write->session->on_control_write_done(status);
}
void on_relay_read(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buffer, const sockaddr* from,
                   unsigned flags) {
  if (flags & UV_UDP_PARTIAL) nread = UV_EMSGSIZE;
  session_of(handle->data)->on_relay_read(nread, buffer, from);
}
void on_relay_send(uv_udp_send_t* request, int status) {
  std::unique_ptr<RelaySend> send(static_cast<RelaySend*>(request->data));
  send->session->on_send_done(status);
}
void on_timer(uv_timer_t* timer) {
  session_of(timer->data)->on_timer();
}
void on_close(uv_handle_t* handle) {
  session_of(handle->data)->on_handle_closed();
}

constexpr std::array<std::uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

// The reply's source as the application's socket can receive it. An IPv4 socket gets
// IPv4-mapped IPv6 sources unmapped; an IPv6 socket gets IPv4 sources mapped (how a
// dual-stack socket sees IPv4 peers). Names cannot be a packet's source: nullopt.
std::optional<net::Endpoint> reply_source(const socks::Address& address, bool app_v4) {
  if (address.type == socks::AddressType::ipv4) {
    std::array<std::uint8_t, 4> v4{};
    std::copy_n(address.ip.begin(), 4, v4.begin());
    if (app_v4) return net::Endpoint{net::IpAddress::v4(v4), address.port};
    std::array<std::uint8_t, 16> v6{};
    std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), v6.begin());
    std::copy(v4.begin(), v4.end(), v6.begin() + 12);
    return net::Endpoint{net::IpAddress::v6(v6), address.port};
  }
  if (address.type != socks::AddressType::ipv6) return std::nullopt;
  if (!app_v4) return net::Endpoint{net::IpAddress::v6(address.ip), address.port};
  if (!std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), address.ip.begin())) {
    return std::nullopt;
  }
  return net::Endpoint{
      net::IpAddress::v4({address.ip[12], address.ip[13], address.ip[14], address.ip[15]}),
      address.port};
}

}  // namespace

std::string_view describe(UdpDrop reason) {
  switch (reason) {
    case UdpDrop::queue_full:
      return "queue_full";
    case UdpDrop::too_large:
      return "too_large";
    case UdpDrop::fragment:
      return "fragment";
    case UdpDrop::no_udp_upstream:
      return "no_udp_upstream";
    case UdpDrop::session_limit:
      return "session_limit";
    case UdpDrop::bad_reply:
      return "bad_reply";
    case UdpDrop::malformed:
      return "malformed";
    case UdpDrop::send_failed:
      return "send_failed";
    case UdpDrop::session_closed:
      return "session_closed";
    case UdpDrop::unknown_fake_ip:
      return "unknown_fake_ip";
    case UdpDrop::blocked:
      return "blocked";
    case UdpDrop::stale_reply:
      return "stale_reply";
    case UdpDrop::count_:
      break;
  }
  return "unknown";
}

std::string_view describe(UdpEnd reason) {
  switch (reason) {
    case UdpEnd::none:
      return "open";
    case UdpEnd::idle_timeout:
      return "idle_timeout";
    case UdpEnd::control_closed:
      return "control_closed";
    case UdpEnd::refused:
      return "refused";
    case UdpEnd::handshake_failed:
      return "handshake_failed";
    case UdpEnd::upstream_unreachable:
      return "upstream_unreachable";
    case UdpEnd::connect_timeout:
      return "connect_timeout";
    case UdpEnd::relay_error:
      return "relay_error";
    case UdpEnd::shutdown:
      return "shutdown";
    case UdpEnd::switched:
      return "switched";
    case UdpEnd::evicted:
      return "evicted";
    case UdpEnd::retried:
      return "retried";
  }
  return "unknown";
}

UdpSession::UdpSession(UdpHost& host, std::uint64_t id, const net::Endpoint& app)
    : host_(host),
      id_(id),
      app_(app),
      upstream_server_(host.flow_settings().upstream),
      // DST.ADDR 0.0.0.0:0: the application's address is a TUN address the relay never
      // sees; RFC 1928 lets the client send zeros when it does not know its own.
      handshake_(upstream_server_->handshake, socks::Command::udp_associate,
                 socks::Address::ipv4({0, 0, 0, 0}, 0)) {
  control_.data = this;
  relay_.data = this;
  timer_.data = this;
  connect_request_.data = this;
}

UdpSession::UdpSession(UdpHost& host, std::uint64_t id, Spare)
    : UdpSession(host, id, net::Endpoint{net::IpAddress::v4(std::uint32_t{0}), 0}) {
  spare_ = true;
}

UdpSession::~UdpSession() {
  assert(outstanding_ == 0);
}

void UdpSession::start(std::uint64_t delay_ms) {
  uv_loop_t* loop = host_.loop();
  started_ms_ = last_activity_ms_ = uv_now(loop);
  auto& counters = host_.udp_counters();
  ++(spare_ ? counters.spares_open : counters.sessions_open);
  ++(spare_ ? counters.spares_total : counters.sessions_total);

  // The timer first: from here on close() always has a handle to wait for.
  uv_timer_init(loop, &timer_);
  ++outstanding_;
  if (delay_ms > 0) {
    // Datagrams queue meanwhile, as they do while dialling; on_timer dials.
    uv_timer_start(&timer_, tunnel::on_timer, delay_ms, 0);
    return;
  }
  dial();
}

void UdpSession::dial() {
  const FlowSettings& settings = host_.flow_settings();
  uv_loop_t* loop = host_.loop();
  auto connecting = connect_upstream(loop, control_, connect_request_, settings, *upstream_server_,
                                     tunnel::on_connect, control_open_);
  if (control_open_) ++outstanding_;
  if (!connecting) {
    detail_ = connecting.error();
    return close(UdpEnd::upstream_unreachable);
  }
  ++outstanding_;
  uv_timer_start(&timer_, tunnel::on_timer, settings.connect_timeout_ms, 0);
}

std::uint64_t UdpSession::idle_limit() const {
  const UdpSettings& settings = host_.udp_settings();
  return only_dns_ ? std::min(settings.idle_timeout_ms, settings.dns_idle_timeout_ms)
                   : settings.idle_timeout_ms;
}

void UdpSession::on_connected(int status) {
  release();
  if (phase_ == Phase::closing) return;
  if (status < 0) {
    detail_ = std::string("upstream connect: ") + uv_strerror(status);
    return close(UdpEnd::upstream_unreachable);
  }
  phase_ = Phase::handshaking;
  uv_read_start(reinterpret_cast<uv_stream_t*>(&control_), tunnel::on_alloc,
                tunnel::on_control_read);
  reading_control_ = true;
  handshake_step();
}

void UdpSession::handshake_step() {
  socks::Bytes bytes = handshake_.take_output();
  if (bytes.empty()) return;
  auto write = std::make_unique<ControlWrite>();
  write->session = this;
  write->bytes = std::move(bytes);
  write->request.data = write.get();
  uv_buf_t buffer = uv_buf_init(reinterpret_cast<char*>(write->bytes.data()),
                                static_cast<unsigned>(write->bytes.size()));
  const int status = uv_write(&write->request, reinterpret_cast<uv_stream_t*>(&control_), &buffer,
                              1, tunnel::on_control_write);
  if (status < 0) {
    detail_ = std::string("upstream write: ") + uv_strerror(status);
    return close(UdpEnd::upstream_unreachable);
  }
  write.release();
  ++outstanding_;
}

void UdpSession::on_control_write_done(int status) {
  if (status < 0 && status != UV_ECANCELED && phase_ != Phase::closing) {
    detail_ = std::string("upstream write: ") + uv_err_name(status);
    if (retried_by_host()) {
      close(UdpEnd::retried);
    } else {
      close(phase_ == Phase::ready ? UdpEnd::control_closed : UdpEnd::handshake_failed);
    }
  }
  release();
}

bool UdpSession::retried_by_host() {
  // socksd at max_connections_per_client accepts and closes at once; at
  // max_udp_associations it answers "general failure". Either way the upstream has said
  // nothing else first.
  if (phase_ != Phase::handshaking) return false;
  const bool closed_unheard = !heard_upstream_;
  const bool general_failure =
      handshake_.status() == ClientHandshake::Status::failed &&
      handshake_.failure() == HandshakeFailure::request_rejected &&
      handshake_.reply_code() == static_cast<std::uint8_t>(socks::Socks5Reply::general_failure);
  return (closed_unheard || general_failure) && host_.udp_upstream_full(*this);
}

uv_buf_t UdpSession::alloc_buffer() {
  return host_.read_buffer(kMaxRead);
}

uv_buf_t UdpSession::relay_buffer() {
  return host_.read_buffer(kRelayReadSlots * kMaxRead);
}

void UdpSession::on_control_read(ssize_t nread, const uv_buf_t* buffer) {
  if (nread == 0 || phase_ == Phase::closing) return;
  if (nread < 0) {
    detail_ = std::string("control connection: ") + uv_err_name(static_cast<int>(nread));
    if (retried_by_host()) return close(UdpEnd::retried);
    return close(phase_ == Phase::ready ? UdpEnd::control_closed : UdpEnd::handshake_failed);
  }
  heard_upstream_ = true;
  // Once the association stands, the control connection carries nothing (RFC 1928): bytes
  // from the upstream are ignored, only its end matters.
  if (phase_ != Phase::handshaking) return;
  handshake_.feed(
      {reinterpret_cast<const std::uint8_t*>(buffer->base), static_cast<std::size_t>(nread)});
  switch (handshake_.status()) {
    case ClientHandshake::Status::in_progress:
      return handshake_step();
    case ClientHandshake::Status::failed:
      detail_ = handshake_.detail();
      if (handshake_.failure() == HandshakeFailure::request_rejected) {
        if (retried_by_host()) return close(UdpEnd::retried);
        host_.udp_refused(*this);
        return close(UdpEnd::refused);
      }
      return close(UdpEnd::handshake_failed);
    case ClientHandshake::Status::succeeded:
      return on_handshake_done();
  }
}

void UdpSession::on_handshake_done() {
  std::string error;
  if (!open_relay(error)) {
    detail_ = error;
    return close(UdpEnd::relay_error);
  }
  phase_ = Phase::ready;
  TS_LOG_DEBUG("udp id=%llu relay %s ready", static_cast<unsigned long long>(id_),
               relay_text_.c_str());
  last_activity_ms_ = uv_now(host_.loop());
  uv_timer_start(&timer_, tunnel::on_timer, idle_limit(), 0);
  for (Queued& queued : std::exchange(queue_, {}))
    send_now(queued.destination, queued.payload, queued.name ? &*queued.name : nullptr);
  queued_bytes_ = 0;
}

bool UdpSession::open_relay(std::string& error) {
  const socks::Address& bound = handshake_.bound();
  if (bound.type == socks::AddressType::domain) {
    error = "relay named by a domain";
    return false;
  }
  const FlowSettings& settings = host_.flow_settings();
  sockaddr_storage relay{};
  const bool v4 = bound.type == socks::AddressType::ipv4;
  const bool unspecified = std::all_of(bound.ip.begin(), bound.ip.begin() + (v4 ? 4 : 16),
                                       [](std::uint8_t byte) { return byte == 0; });
  if (unspecified) {
    // 0.0.0.0 / ::: "the address you reached me at" (what many servers answer).
    relay = upstream_server_->address;
  } else if (v4) {
    auto* in = reinterpret_cast<sockaddr_in*>(&relay);
    in->sin_family = AF_INET;
    std::memcpy(&in->sin_addr, bound.ip.data(), 4);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&relay);
    in6->sin6_family = AF_INET6;
    std::memcpy(&in6->sin6_addr, bound.ip.data(), 16);
  }
  const std::uint16_t port = htons(bound.port);
  if (relay.ss_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&relay)->sin_port = port;
  } else {
    reinterpret_cast<sockaddr_in6*>(&relay)->sin6_port = port;
  }
  relay_text_ = net::format_sockaddr(reinterpret_cast<const sockaddr*>(&relay));

  int status = uv_udp_init_ex(host_.loop(), &relay_, relay.ss_family | UV_UDP_RECVMMSG);
  if (status < 0) {
    error = std::string("udp socket: ") + uv_strerror(status);
    return false;
  }
  ++outstanding_;
  relay_open_ = true;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&relay_), &fd) == 0) {
    net::grow_socket_buffers(fd, static_cast<int>(kRelaySocketBuffer));
  }
  if (settings.fwmark != 0 && fd >= 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_MARK, &settings.fwmark, sizeof settings.fwmark) < 0) {
    error = std::string("SO_MARK: ") + std::strerror(errno);
    return false;
  }
  // Connected: the kernel then drops datagrams from anyone but the relay.
  status = uv_udp_connect(&relay_, reinterpret_cast<const sockaddr*>(&relay));
  if (status == 0)
    status = uv_udp_recv_start(&relay_, tunnel::on_relay_alloc, tunnel::on_relay_read);
  if (status < 0) {
    error = std::string("udp relay ") + relay_text_ + ": " + uv_strerror(status);
    return false;
  }
  return true;
}

bool UdpSession::remember_name(const std::string& name, const net::Endpoint& fake) {
  for (const Named& named : named_)
    if (named.fake == fake) return false;
  if (named_.size() >= kMaxNamed) return false;
  named_.push_back({name, fake});
  return true;
}

void UdpSession::send(const net::Endpoint& destination, PacketView payload,
                      const std::string* name) {
  UdpCounters& counters = host_.udp_counters();
  const std::size_t header =
      kSocksUdpHeader + (name != nullptr ? 1 + name->size() : destination.ip.bytes().size());
  // Never truncated: a datagram the relay path cannot carry whole is dropped.
  if (header + payload.size() > kMaxRelayPayload) return counters.drop(UdpDrop::too_large);
  if (destination.port != kDnsPort) only_dns_ = false;
  switch (phase_) {
    case Phase::ready:
      return send_now(destination, payload, name);
    case Phase::dialing:
    case Phase::handshaking: {
      const UdpSettings& settings = host_.udp_settings();
      if (queue_.size() >= settings.queue_datagrams ||
          queued_bytes_ + payload.size() > settings.queue_bytes) {
        return counters.drop(UdpDrop::queue_full);
      }
      queue_.push_back({destination, PacketBytes(payload.begin(), payload.end()),
                        name != nullptr ? std::optional<std::string>(*name) : std::nullopt});
      queued_bytes_ += payload.size();
      return;
    }
    case Phase::closing:
      return counters.drop(UdpDrop::session_closed);
  }
}

void UdpSession::send_now(const net::Endpoint& destination, PacketView payload,
                          const std::string* name) {
  UdpCounters& counters = host_.udp_counters();
  std::array<std::uint8_t, 4 + 1 + socks::kMaxDomainLength + 2> header{};
  auto written =
      socks::write_udp_header({0, name != nullptr ? socks::Address::name(*name, destination.port)
                                                  : socks_address(destination)},
                              header);
  if (name == nullptr && std::find(direct_.begin(), direct_.end(), destination) == direct_.end()) {
    if (direct_.size() >= kMaxDirect) direct_.erase(direct_.begin());
    direct_.push_back(destination);
  }
  if (!written) return counters.drop(UdpDrop::send_failed);
  last_activity_ms_ = uv_now(host_.loop());
  last_was_reply_ = false;
  ++exchange_up_;
  host_.udp_active(*this);
  // Header and payload go out as one datagram without being copied together.
  std::array<uv_buf_t, 2> buffers{
      uv_buf_init(reinterpret_cast<char*>(header.data()), static_cast<unsigned>(*written)),
      uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(payload.data())),
                  static_cast<unsigned>(payload.size()))};
  int status = uv_udp_try_send(&relay_, buffers.data(), 2, nullptr);
  if (status == UV_EAGAIN && sends_in_flight_ < kMaxSendsInFlight) {
    // The socket buffer is full: this one waits in libuv, with bytes of its own.
    auto send = std::make_unique<RelaySend>();
    send->session = this;
    send->bytes.assign(header.begin(), header.begin() + static_cast<std::ptrdiff_t>(*written));
    send->bytes.insert(send->bytes.end(), payload.begin(), payload.end());
    send->request.data = send.get();
    uv_buf_t whole = uv_buf_init(reinterpret_cast<char*>(send->bytes.data()),
                                 static_cast<unsigned>(send->bytes.size()));
    status = uv_udp_send(&send->request, &relay_, &whole, 1, nullptr, tunnel::on_relay_send);
    if (status == 0) {
      send.release();
      ++outstanding_;
      ++sends_in_flight_;
    }
  }
  if (status < 0) return counters.drop(UdpDrop::send_failed);
  ++datagrams_up_;
  bytes_up_ += payload.size();
  ++counters.datagrams_up;
  counters.bytes_up += payload.size();
}

void UdpSession::on_send_done(int) {
  --sends_in_flight_;
  release();
}

void UdpSession::on_relay_read(ssize_t nread, const uv_buf_t* buffer, const sockaddr* from) {
  if (phase_ == Phase::closing || (nread == 0 && from == nullptr)) return;
  UdpCounters& counters = host_.udp_counters();
  if (nread == UV_EMSGSIZE) return counters.drop(UdpDrop::bad_reply);
  // A spare has sent nothing: whatever comes is for no one.
  if (spare_ && nread >= 0) return counters.drop(UdpDrop::stale_reply);
  if (nread < 0) {
    // On a connected socket this is the relay's port answering "unreachable": the server
    // dropped the association.
    detail_ = std::string("relay read: ") + uv_err_name(static_cast<int>(nread));
    return close(UdpEnd::relay_error);
  }
  auto datagram = socks::parse_udp_datagram(
      {reinterpret_cast<const std::uint8_t*>(buffer->base), static_cast<std::size_t>(nread)});
  // FRAG != 0 is SOCKS-level fragmentation, which RFC 1928 makes optional and no relay in
  // use sends: dropping it is what the RFC allows an implementation without reassembly.
  if (!datagram || datagram->header.fragment != 0) return counters.drop(UdpDrop::bad_reply);
  auto source = reply_from(datagram->header.address);
  if (!source) return counters.drop(UdpDrop::bad_reply);
  if (recycled_ != 0 && std::find(direct_.begin(), direct_.end(), *source) == direct_.end() &&
      std::none_of(named_.begin(), named_.end(),
                   [&](const Named& named) { return named.fake == *source; })) {
    return counters.drop(UdpDrop::stale_reply);
  }
  last_activity_ms_ = uv_now(host_.loop());
  last_was_reply_ = true;
  host_.udp_active(*this);
  ++datagrams_down_;
  bytes_down_ += datagram->payload.size();
  ++counters.datagrams_down;
  counters.bytes_down += datagram->payload.size();
  host_.write_udp(*source, app_, datagram->payload);
}

std::optional<net::Endpoint> UdpSession::reply_from(const socks::Address& address) const {
  if (address.type == socks::AddressType::domain) {
    for (const Named& named : named_)
      if (named.name == address.domain && named.fake.port == address.port) return named.fake;
    return std::nullopt;
  }
  auto source = reply_source(address, app_.ip.is_v4());
  if (!source || named_.empty()) return source;
  // A reply from the address the relay resolved a fake-ip name to: the application sent
  // to the fake address and (with a connected socket) accepts replies only from it. The
  // port tells which name, unless the reply comes from a destination sent to directly.
  if (std::find(direct_.begin(), direct_.end(), *source) != direct_.end()) return source;
  for (const Named& named : named_)
    if (named.fake.port == source->port) return named.fake;
  return source;
}

void UdpSession::on_timer() {
  switch (phase_) {
    case Phase::dialing:
      // No control connection yet while dialling: start() was asked to wait.
      if (!control_open_) return dial();
      [[fallthrough]];
    case Phase::handshaking:
      detail_ =
          "no answer within " + std::to_string(host_.flow_settings().connect_timeout_ms) + " ms";
      return close(UdpEnd::connect_timeout);
    case Phase::ready: {
      const std::uint64_t idle = idle_limit();
      const std::uint64_t quiet = uv_now(host_.loop()) - last_activity_ms_;
      // Activity only stamps a time; the timer re-arms itself here, once per idle period.
      if (quiet >= idle) return close(UdpEnd::idle_timeout);
      uv_timer_start(&timer_, tunnel::on_timer, idle - quiet, 0);
      return;
    }
    case Phase::closing:
      return;
  }
}

void UdpSession::stop(UdpEnd reason) {
  close(reason);
}

std::vector<UdpSession::Named> UdpSession::recycle(const net::Endpoint& app) {
  app_ = app;
  ++recycled_;
  direct_.clear();
  last_was_reply_ = false;
  exchange_up_ = 0;
  only_dns_ = true;
  return std::exchange(named_, {});
}

void UdpSession::adopt(const net::Endpoint& app) {
  assert(spare_ && phase_ != Phase::closing);
  app_ = app;
  spare_ = false;
  // Its idle time counts from now: the timer re-arms itself from this stamp.
  last_activity_ms_ = uv_now(host_.loop());
  auto& counters = host_.udp_counters();
  --counters.spares_open;
  ++counters.sessions_open;
  ++counters.spares_taken;
  ++counters.sessions_total;
}

void UdpSession::hand_over(UdpSession& next) {
  next.named_ = std::exchange(named_, {});
  for (Queued& queued : std::exchange(queue_, {}))
    next.send(queued.destination, queued.payload, queued.name ? &*queued.name : nullptr);
  queued_bytes_ = 0;
}

void UdpSession::close(UdpEnd reason) {
  if (phase_ == Phase::closing) return;
  phase_ = Phase::closing;
  end_ = reason;
  UdpCounters& counters = host_.udp_counters();
  --(spare_ ? counters.spares_open : counters.sessions_open);
  if (!queue_.empty()) counters.drop(UdpDrop::session_closed, queue_.size());
  queue_.clear();
  queue_.shrink_to_fit();
  queued_bytes_ = 0;

  if (control_open_) {
    control_open_ = false;
    if (reading_control_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&control_));
    reading_control_ = false;
    // The server ends the association when its control connection closes (RFC 1928 7).
    // With a reset rather than a FIN: the control connection carries nothing to flush,
    // and an orderly close would leave it in TIME_WAIT here for a minute. Sockets that
    // open an association per query (resolvers) would pile up tens of thousands of those
    // toward the one upstream address, and every connect() scans them for a free port
    // (a profile of 500 new associations/s: 40% of tunsocks' CPU in __inet_hash_connect).
    if (uv_tcp_close_reset(&control_, tunnel::on_close) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&control_), tunnel::on_close);
    }
  }
  if (relay_open_) {
    relay_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&relay_), tunnel::on_close);
  }
  auto* timer = reinterpret_cast<uv_handle_t*>(&timer_);
  if (timer_.type == UV_TIMER && !uv_is_closing(timer)) uv_close(timer, tunnel::on_close);
}

void UdpSession::on_handle_closed() {
  release();
}

void UdpSession::release() {
  --outstanding_;
  assert(outstanding_ >= 0);
  if (outstanding_ == 0 && phase_ == Phase::closing) host_.udp_finished(*this);
}

}  // namespace tunsocks::tunnel
