#include "tunnel/tunnel.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <utility>

#include <nlohmann/json.hpp>

#include "net/log.h"
#include "tunnel/dns.h"
#include "tunnel/icmp_echo.h"
#include "tunsocks_lwip_port.h"

namespace tunsocks::tunnel {
namespace {

// Shared by every upstream read: up to four of lwIP's largest segments per read(2), a
// quarter of the read calls 64 KiB took on a download.
constexpr std::size_t kReadBuffer = 256 * 1024;
// How long a refusal of UDP ASSOCIATE is remembered: datagrams meanwhile are dropped at
// once instead of each costing the upstream a connection it will refuse again.
constexpr std::uint64_t kUdpRefusalMs = 60'000;
// How long a learned upstream association limit holds (see udp_upstream_cap_).
constexpr std::uint64_t kUdpUpstreamCapMs = 60'000;
// Set-ups of the same datagrams after an upstream limit: one retry is what making room
// needs; a second covers a close the upstream had not seen yet.
constexpr int kMaxUdpSetupAttempts = 3;
// How long a retry waits for the upstream to see the association closed to make room: a
// server counts a connection until its loop has processed the reset, and a retry dialled
// at once was refused again within the same millisecond (socksd, 1 run in 2-4 of the
// fresh-port test).
constexpr std::uint64_t kUdpRetryDelayMs = 20;
// An association that neither got an answer last nor moved a datagram for this long may
// make room for a new one (an application waits for an answer a few seconds at most).
constexpr std::uint64_t kUdpEvictQuietMs = 1'000;
// After a spare failed, none are set up for this long (see udp_spares_paused_until_ms_).
constexpr std::uint64_t kUdpSparePauseMs = 5'000;
// Spares are set up this long after a socket took one (or opened its own): at once, their
// TCP connects and SOCKS exchanges (in tunsocks and in the upstream) came before the
// datagram that took the spare, on its way to the relay and back, and ate what the spare
// saved (first replies through socksd: 550 us either way, with or without spares).
constexpr std::uint64_t kUdpSpareDelayMs = 2;
constexpr std::uint16_t kDnsPort = 53;
constexpr std::size_t kDnsHeaderSize = 12;  // ID, flags, four counts (RFC 1035 4.1.1)

// The key of the one association that carries every relayed DNS query of a family. No
// application socket has the unspecified address and port 0, so it never collides.
net::Endpoint dns_client_key(const net::Endpoint& resolver) {
  return {resolver.ip.is_v4() ? net::IpAddress::v4(std::uint32_t{0})
                              : net::IpAddress::v6(std::array<std::uint8_t, 16>{}),
          0};
}

// DNS-over-TCP connections answered at once; resolvers open one or two at a time.
constexpr std::size_t kMaxDnsTcp = 64;

// Details are short phrases ("connection refused"); in a key=value line their spaces
// become underscores rather than escapes.
std::string detail_token(std::string detail) {
  std::replace(detail.begin(), detail.end(), ' ', '_');
  return net::log_token(detail);
}

Tunnel* tunnel_of(void* data) {
  return static_cast<Tunnel*>(data);
}

void on_poll(uv_poll_t* poll, int status, int) {
  if (status == 0) tunnel_of(poll->data)->on_readable();
}
void on_idle(uv_idle_t* idle) {
  tunnel_of(idle->data)->on_reap();
}
void on_spare_timer(uv_timer_t* timer) {
  tunnel_of(timer->data)->top_up_spares();
}

}  // namespace

std::size_t EndpointHash::operator()(const net::Endpoint& endpoint) const noexcept {
  // FNV-1a, as FlowKeyHash: the application, not the wire, chooses these keys.
  std::uint64_t hash = 0xcbf29ce484222325ull;
  auto mix = [&hash](std::uint8_t byte) {
    hash ^= byte;
    hash *= 0x100000001b3ull;
  };
  for (std::uint8_t byte : endpoint.ip.bytes())
    mix(byte);
  mix(static_cast<std::uint8_t>(endpoint.port >> 8));
  mix(static_cast<std::uint8_t>(endpoint.port));
  return static_cast<std::size_t>(hash);
}

Tunnel::Tunnel(uv_loop_t* loop, int tun_fd, TunnelSettings settings)
    : loop_(loop),
      tun_(tun_fd, settings.framing),
      settings_(std::move(settings)),
      stack_(loop, *this,
             {.mtu = tun_.framing().mtu,
              .kernel_checksums = tun_.framing().checksum_offload,
              .large_segments = tun_.framing().segmentation}),
      fake_ips_(settings_.fake_ip_capacity) {
  poll_.data = this;
  reaper_.data = this;
  spare_timer_.data = this;
  if (settings_.dns == DnsMode::tcp && settings_.dns_server) {
    dns_over_tcp_ = std::make_unique<DnsTcpUpstream>(*this, *settings_.dns_server);
  }
}

Tunnel::~Tunnel() = default;

int Tunnel::start() {
  int status = uv_poll_init(loop_, &poll_, tun_.fd());
  if (status < 0) return status;
  ++handles_open_;
  uv_idle_init(loop_, &reaper_);
  ++handles_open_;
  uv_timer_init(loop_, &spare_timer_);
  ++handles_open_;
  return uv_poll_start(&poll_, UV_READABLE, on_poll);
}

void Tunnel::on_readable() {
  // Many packets per wake-up, bounded so that upstream sockets are not starved.
  for (std::size_t i = 0; i < settings_.packets_per_wakeup; ++i) {
    auto packet = tun_.read(stack_.receive_buffer());
    if (!packet) {
      if (packet.error() == EAGAIN || packet.error() == EINTR) break;
      ++counters_.tun_read_errors;
      TS_LOG_ERROR("tun: read failed: %s", std::strerror(packet.error()));
      break;
    }
    ++counters_.packets_in;
    process_packet(packet->bytes, packet->checksum_trusted);
  }
  stack_.check_timeouts();
  // Incomplete datagrams go when their time is up, not only when a fragment arrives; the
  // reassembler's bounds hold its memory meanwhile, so no timer of its own is needed.
  if (reassembler_.pending() != 0) {
    if (const std::size_t expired = reassembler_.expire(uv_now(loop_)); expired != 0) {
      udp_counters_.drop(UdpDrop::fragment, expired);
    }
  }
}

void Tunnel::process_packet(PacketView packet, bool checksum_trusted) {
  auto info = classify(packet);
  if (!info) {
    ++counters_.malformed[static_cast<std::size_t>(info.error())];
    return;
  }
  switch (info->protocol) {
    case kProtoTcp:
      if (info->has_ports) return handle_tcp(*info, packet, checksum_trusted);
      // A fragment without the TCP header: lwIP reassembles it.
      return stack_.input(packet.first(info->total_length), checksum_trusted);
    case kProtoUdp:
      return handle_udp(*info, packet);
    case kProtoIcmp:
    case kProtoIcmpv6:
      if (settings_.answer_ping) {
        if (auto reply = build_echo_reply(*info, packet)) {
          ++counters_.pings_answered;
          return write_packet(*reply);
        }
      }
      ++counters_.icmp_dropped;
      return;
    default:
      ++counters_.other_dropped;
      return;
  }
}

void Tunnel::handle_tcp(const PacketInfo& info, PacketView packet, bool checksum_trusted) {
  packet = packet.first(info.total_length);
  PacketBytes whole_syn;
  if (checksum_trusted && info.is_tcp_syn()) {
    // A SYN is held and fed to lwIP later, without the header that vouched for its partial
    // checksum: it gets a whole one (it is small and comes once per flow).
    whole_syn.assign(packet.begin(), packet.end());
    if (complete_tcp_checksum(whole_syn)) {
      packet = whole_syn;
      checksum_trusted = false;
    }
  }
  auto found = flows_.find(info.flow);
  if (found != flows_.end()) {
    const auto phase = found->second->phase();
    if (info.is_tcp_syn() &&
        (phase == TcpFlow::Phase::dialing || phase == TcpFlow::Phase::handshaking)) {
      // The application retransmits its SYN while the upstream is still being asked.
      ++counters_.duplicate_syns;
      return;
    }
    return stack_.input(packet, checksum_trusted);
  }
  if (settings_.dns == DnsMode::fake_ip && info.flow.destination.port == kDnsPort) {
    return handle_dns_tcp(info, packet, checksum_trusted);
  }
  if (!info.is_tcp_syn() || stopping_) {
    // Not a new connection: lwIP answers for pcbs it still has (closing ones) and resets
    // the rest.
    return stack_.input(packet, checksum_trusted);
  }
  if (settings_.max_flows != 0 && flows_.size() >= settings_.max_flows) {
    ++counters_.flow_limit_refusals;
    write_packet(build_refusal(info, packet, Refusal::reset));
    return;
  }
  if (!memory_guard_.admit(uv_now(loop_))) {
    // A reset now beats the OOM killer later, which would end every open flow at once.
    write_packet(build_refusal(info, packet, Refusal::reset));
    return;
  }
  const std::uint64_t id = next_flow_id_++;
  std::optional<std::string> name;
  if (goes_by_name(info.flow.destination.ip)) {
    const std::string* known = fake_ips_.name_of(info.flow.destination.ip);
    if (known == nullptr) {
      // A pool address no answer of ours handed out (a cached answer from before a restart):
      // it stands for nothing the proxy could reach. "Unreachable" makes the application
      // fail at once and resolve again, instead of the proxy trying 198.18.x.y.
      ++counters_.fake_ip_unknown;
      write_packet(build_refusal(info, packet, Refusal::host_unreachable));
      return;
    }
    name = *known;
    fake_ips_.acquire(info.flow.destination.ip);
    ++counters_.fake_ip_flows;
  }
  auto [slot, inserted] = flows_.emplace(
      info.flow, std::make_unique<TcpFlow>(*this, id, info, packet, std::move(name)));
  TS_LOG_DEBUG("flow id=%llu src=%s dst=%s opening", static_cast<unsigned long long>(id),
               info.flow.source.to_string().c_str(), info.flow.destination.to_string().c_str());
  slot->second->start();
}

void Tunnel::handle_udp(const PacketInfo& info, PacketView packet) {
  packet = packet.first(info.total_length);
  if (info.fragment) {
    UdpReassembler::Complete whole;
    const std::uint64_t lost_before = reassembler_.dropped();
    const auto result = reassembler_.add(info, packet, uv_now(loop_), whole);
    if (const std::uint64_t lost = reassembler_.dropped() - lost_before; lost != 0) {
      udp_counters_.drop(UdpDrop::fragment, lost);
    }
    if (result != UdpReassembler::Result::complete) return;
    auto datagram = parse_udp(whole.source, whole.destination, whole.transport);
    if (!datagram) return udp_counters_.drop(UdpDrop::malformed);
    return relay_udp(*datagram);
  }
  auto datagram = parse_udp(info.flow.source.ip, info.flow.destination.ip,
                            packet.subspan(info.ip_header_length));
  if (!datagram) return udp_counters_.drop(UdpDrop::malformed);
  relay_udp(*datagram);
}

// The fake-ip answer to an A or AAAA question of class IN; empty for any other question.
PacketBytes Tunnel::fake_ip_answer(const DnsQuery& query, PacketView message) {
  if (query.klass != kDnsClassIn || query.name.empty() ||
      (query.type != kDnsTypeA && query.type != kDnsTypeAaaa)) {
    return {};
  }
  const auto index = fake_ips_.assign(query.name);
  std::optional<net::IpAddress> address;
  if (index) {
    address = query.type == kDnsTypeA ? FakeIpPool::ipv4(*index) : FakeIpPool::ipv6(*index);
  } else {
    ++counters_.dns_pool_full;
  }
  ++counters_.dns_answered;
  return build_dns_response(query, message, address, settings_.fake_ip_ttl, index ? 0 : 2);
}

bool Tunnel::answer_dns(const UdpDatagramView& datagram) {
  auto query = parse_dns_query(datagram.payload);
  if (!query) return false;
  const PacketBytes response = fake_ip_answer(*query, datagram.payload);
  if (response.empty()) return false;
  // From the resolver the application asked, to the application's socket.
  write_udp(datagram.destination, datagram.source, response);
  return true;
}

PacketBytes Tunnel::answer_dns_message(PacketView message) {
  auto query = parse_dns_query(message);
  if (!query) return {};
  PacketBytes response = fake_ip_answer(*query, message);
  // Other questions cannot be forwarded over this connection (it ends here, not at a
  // resolver): REFUSED sends the client's resolver to its next server, or to UDP.
  if (response.empty()) response = build_dns_response(*query, message, std::nullopt, 0, 5);
  return response;
}

void Tunnel::handle_dns_tcp(const PacketInfo& info, PacketView packet, bool checksum_trusted) {
  if (!info.is_tcp_syn() || stopping_ || dns_tcp_.contains(info.flow)) {
    return stack_.input(packet, checksum_trusted);
  }
  if (dns_tcp_.size() >= kMaxDnsTcp) {
    ++counters_.flow_limit_refusals;
    write_packet(build_refusal(info, packet, Refusal::reset));
    return;
  }
  auto& session = dns_tcp_[info.flow];
  session = std::make_unique<DnsTcpSession>(*this, info.flow);
  session->start();
  ++counters_.dns_tcp_connections;
  // No upstream to ask: lwIP answers the SYN at once.
  stack_.input_syn(packet, info.flow);
}

void Tunnel::dns_tcp_finished(DnsTcpSession& session) {
  dns_tcp_finished_.push_back(session.key());
  uv_idle_start(&reaper_, on_idle);
}

void Tunnel::relay_udp(const UdpDatagramView& datagram) {
  if (stopping_) return udp_counters_.drop(UdpDrop::session_closed);
  const bool dns = settings_.dns != DnsMode::off && datagram.destination.port == kDnsPort;
  if (dns && settings_.dns == DnsMode::fake_ip && answer_dns(datagram)) return;
  // Over TCP, DNS needs nothing but CONNECT: it works through SOCKS4 upstreams too.
  if (dns && dns_over_tcp_) return forward_dns(datagram);
  if (!dns && settings_.udp_blocked) return udp_counters_.drop(UdpDrop::blocked);
  if (settings_.flow.upstream->handshake.version == SocksVersion::socks4) {
    if (!socks4_udp_warned_) {
      socks4_udp_warned_ = true;
      TS_LOG_WARN(
          "udp: upstream %s is SOCKS4, which carries TCP only; UDP datagrams are dropped and "
          "counted (udp_dropped_by_reason.no_udp_upstream)",
          settings_.flow.upstream->display.c_str());
    }
    return udp_counters_.drop(UdpDrop::no_udp_upstream);
  }
  if (uv_now(loop_) < udp_refused_until_ms_) return udp_counters_.drop(UdpDrop::no_udp_upstream);
  // A fake-ip destination goes upstream by its name; one that stands for no name is
  // dropped before it costs an association.
  const std::string* name = nullptr;
  if (goes_by_name(datagram.destination.ip)) {
    name = fake_ips_.name_of(datagram.destination.ip);
    if (name == nullptr) {
      ++counters_.fake_ip_unknown;
      return udp_counters_.drop(UdpDrop::unknown_fake_ip);
    }
  }
  if (dns) return forward_dns(datagram);
  UdpSession* session = session_for(datagram.source);
  if (session == nullptr) return;
  if (name != nullptr && session->remember_name(*name, datagram.destination)) {
    fake_ips_.acquire(datagram.destination.ip);
    ++counters_.fake_ip_flows;
  }
  session->send(datagram.destination, datagram.payload, name);
}

UdpSession* Tunnel::session_for(const net::Endpoint& key) {
  auto found = udp_sessions_.find(key);
  if (found != udp_sessions_.end() && found->second->phase() == UdpSession::Phase::closing) {
    // The socket's old association is still closing its handles: it moves aside (to be
    // destroyed when it finishes) and the datagram opens a new one instead of being lost.
    udp_closing_.push_back(std::move(found->second));
    udp_sessions_.erase(found);
    found = udp_sessions_.end();
  }
  if (found != udp_sessions_.end()) return found->second.get();
  // The shared DNS associations live long and come one per family: no spares for them.
  const bool for_socket = key != dns_client_key(key);
  if (UdpSession* spare = take_spare(key)) {
    if (for_socket) schedule_spares();
    return spare;
  }
  const std::size_t limit = udp_limit();
  if (udp_counters_.associations_open() >= limit && settings_.udp.recycle) {
    if (UdpSession* recycled = recycle_session(key)) return recycled;
  }
  // Like a NAT table that is full: an idle association makes room before a new flow is
  // refused (closing ones are not counted; they are gone within a loop turn or two).
  if (udp_counters_.associations_open() >= limit && !make_udp_room(nullptr)) {
    udp_counters_.drop(UdpDrop::session_limit);
    return nullptr;
  }
  // Near the memory limit an association is refused like one over the count limit.
  if (!memory_guard_.admit(uv_now(loop_))) {
    udp_counters_.drop(UdpDrop::session_limit);
    return nullptr;
  }
  UdpSession* opened = open_session(key, 0);
  if (for_socket) schedule_spares();
  return opened;
}

std::size_t Tunnel::udp_limit() const {
  std::size_t limit = settings_.udp.max_sessions;
  if (udp_upstream_cap_ != 0 && uv_now(loop_) < udp_upstream_cap_until_ms_) {
    limit = std::min(limit, udp_upstream_cap_);
  }
  return limit;
}

UdpSession* Tunnel::take_spare(const net::Endpoint& key) {
  // The oldest first: it is the furthest along (ready, most likely).
  auto usable = std::find_if(udp_spares_.begin(), udp_spares_.end(), [&](const auto& spare) {
    return spare->phase() != UdpSession::Phase::closing &&
           &spare->upstream() == settings_.flow.upstream.get();
  });
  if (usable == udp_spares_.end()) return nullptr;
  UdpSession* session = usable->get();
  TS_LOG_DEBUG("udp id=%llu spare taken by src=%s", static_cast<unsigned long long>(session->id()),
               key.to_string().c_str());
  session->adopt(key);
  udp_sessions_[key] = std::move(*usable);
  udp_spares_.erase(usable);
  udp_lru_.splice(udp_lru_.end(), udp_lru_, session->lru_position);
  return session;
}

void Tunnel::schedule_spares() {
  if (settings_.udp.spares == 0 || uv_is_active(reinterpret_cast<uv_handle_t*>(&spare_timer_))) {
    return;
  }
  uv_timer_start(&spare_timer_, on_spare_timer, kUdpSpareDelayMs, 0);
}

void Tunnel::top_up_spares() {
  const std::uint64_t now = uv_now(loop_);
  if (stopping_ || now < udp_spares_paused_until_ms_) return;
  auto live = static_cast<std::size_t>(std::count_if(
      udp_spares_.begin(), udp_spares_.end(),
      [](const auto& spare) { return spare->phase() != UdpSession::Phase::closing; }));
  while (live < settings_.udp.spares && udp_counters_.associations_open() < udp_limit() &&
         memory_guard_.admit(now)) {
    auto& spare = udp_spares_.emplace_back(
        std::make_unique<UdpSession>(*this, next_udp_id_++, UdpSession::Spare{}));
    spare->lru_position = udp_lru_.insert(udp_lru_.end(), spare.get());
    ++live;
    spare->start();
    if (uv_now(loop_) < udp_spares_paused_until_ms_) return;  // it failed at once
  }
}

UdpSession* Tunnel::open_session(const net::Endpoint& key, int attempt, std::uint64_t delay_ms) {
  const std::uint64_t id = next_udp_id_++;
  auto& session = udp_sessions_[key];
  session = std::make_unique<UdpSession>(*this, id, key);
  session->set_attempt(attempt);
  session->lru_position = udp_lru_.insert(udp_lru_.end(), session.get());
  TS_LOG_DEBUG("udp id=%llu src=%s opening", static_cast<unsigned long long>(id),
               key.to_string().c_str());
  UdpSession* opened = session.get();
  opened->start(delay_ms);
  return opened;
}

bool Tunnel::make_udp_room(const UdpSession* keep) {
  // A spare first: no application socket misses it.
  for (const auto& spare : udp_spares_) {
    if (spare.get() != keep && spare->phase() != UdpSession::Phase::closing) {
      spare->stop(UdpEnd::evicted);
      return true;
    }
  }
  const std::uint64_t now = uv_now(loop_);
  // The least recently active association that is idle: first one whose exchange got its
  // answer (a resolver's socket is closed by then), else one quiet for a while (a reply
  // slower than that is not waited for). Those setting up or closing sit near the recent
  // end or leave within a turn, so the walks are short.
  auto evictable = [&](const UdpSession* session) {
    return session != keep && session->phase() == UdpSession::Phase::ready &&
           session->app() != dns_client_key(session->app());
  };
  UdpSession* victim = nullptr;
  for (UdpSession* session : udp_lru_) {
    if (evictable(session) && session->exchange_answered()) {
      victim = session;
      break;
    }
  }
  for (auto it = udp_lru_.begin(); victim == nullptr && it != udp_lru_.end(); ++it) {
    if (evictable(*it) && now - (*it)->last_activity_ms() >= kUdpEvictQuietMs) victim = *it;
  }
  if (victim == nullptr) return false;
  ++udp_counters_.sessions_evicted;
  victim->stop(UdpEnd::evicted);
  return true;
}

UdpSession* Tunnel::recycle_session(const net::Endpoint& key) {
  // Set-up is most of what a one-query socket costs (a TCP connection and a SOCKS
  // exchange each side, then closing them): at the limit one answered association moves
  // on instead of one closing and another opening. Below the limit every socket still
  // gets an association (and a relay port) of its own.
  for (UdpSession* session : udp_lru_) {
    if (session->phase() != UdpSession::Phase::ready || !session->exchange_answered() ||
        session->app() == dns_client_key(session->app()) ||
        &session->upstream() != settings_.flow.upstream.get()) {
      continue;
    }
    auto found = udp_sessions_.find(session->app());
    if (found == udp_sessions_.end() || found->second.get() != session) continue;
    // The table's node moves with it: no allocation per recycled association.
    auto node = udp_sessions_.extract(found);
    TS_LOG_DEBUG("udp id=%llu src=%s recycled for src=%s",
                 static_cast<unsigned long long>(session->id()), session->app().to_string().c_str(),
                 key.to_string().c_str());
    for (const UdpSession::Named& named : session->recycle(key))
      fake_ips_.release(named.fake.ip);
    udp_lru_.splice(udp_lru_.end(), udp_lru_, session->lru_position);
    ++udp_counters_.sessions_recycled;
    node.key() = key;
    udp_sessions_.insert(std::move(node));
    return session;
  }
  return nullptr;
}

void Tunnel::udp_active(UdpSession& session) {
  udp_lru_.splice(udp_lru_.end(), udp_lru_, session.lru_position);
}

bool Tunnel::udp_upstream_full(UdpSession& session) {
  if (stopping_ || session.attempt() + 1 >= kMaxUdpSetupAttempts) return false;
  auto found = udp_sessions_.find(session.app());
  if (found == udp_sessions_.end() || found->second.get() != &session) return false;
  // What the upstream holds of ours, this one not counted: more would be refused again.
  const std::uint64_t open = udp_counters_.associations_open() - 1;
  if (open == 0 || !make_udp_room(&session)) return false;
  const std::size_t cap = static_cast<std::size_t>(open);
  const std::uint64_t now = uv_now(loop_);
  const bool known = udp_upstream_cap_ != 0 && now < udp_upstream_cap_until_ms_;
  // Once per learning, not per refusal: a burst brings several refusals in a row.
  if (!known) {
    TS_LOG_INFO(
        "udp: upstream %s is full at %zu associations; idle ones make room for new ones "
        "(udp_sessions_recycled, udp_sessions_evicted)",
        session.upstream().display.c_str(), cap);
  }
  if (!known || cap < udp_upstream_cap_) udp_upstream_cap_ = cap;
  udp_upstream_cap_until_ms_ = now + kUdpUpstreamCapMs;
  ++udp_counters_.setup_retries;
  // The refused session is inside its own callback: it moves aside and ends by itself.
  udp_closing_.push_back(std::move(found->second));
  udp_sessions_.erase(found);
  UdpSession* next = open_session(session.app(), session.attempt() + 1, kUdpRetryDelayMs);
  session.hand_over(*next);
  return true;
}

void Tunnel::forward_dns(const UdpDatagramView& datagram) {
  const PacketView query = datagram.payload;
  if (query.size() < kDnsHeaderSize) return udp_counters_.drop(UdpDrop::malformed);
  const net::Endpoint resolver = settings_.dns_server.value_or(datagram.destination);
  const auto their_id = static_cast<std::uint16_t>(query[0] << 8 | query[1]);
  auto our_id = dns_ids_.add({datagram.source, datagram.destination, their_id, 0}, uv_now(loop_));
  if (!our_id) return udp_counters_.drop(UdpDrop::queue_full);
  PacketBytes rewritten(query.begin(), query.end());
  rewritten[0] = static_cast<std::uint8_t>(*our_id >> 8);
  rewritten[1] = static_cast<std::uint8_t>(*our_id);
  if (dns_over_tcp_) {
    if (!dns_over_tcp_->send(rewritten)) {
      (void)dns_ids_.take(*our_id, uv_now(loop_));
      return udp_counters_.drop(UdpDrop::queue_full);
    }
    ++counters_.dns_forwarded;
    return;
  }
  UdpSession* session = session_for(dns_client_key(resolver));
  if (session == nullptr) {
    (void)dns_ids_.take(*our_id, uv_now(loop_));
    return;
  }
  ++counters_.dns_forwarded;
  session->send(resolver, rewritten);
}

// A reply on the shared DNS association goes back to the socket that asked, from the
// address it asked, with its own ID.
void Tunnel::deliver_dns_reply(PacketView reply) {
  if (reply.size() < kDnsHeaderSize) return udp_counters_.drop(UdpDrop::bad_reply);
  const auto our_id = static_cast<std::uint16_t>(reply[0] << 8 | reply[1]);
  auto query = dns_ids_.take(our_id, uv_now(loop_));
  if (!query) {
    ++counters_.dns_unmatched;
    return udp_counters_.drop(UdpDrop::bad_reply);
  }
  PacketBytes restored(reply.begin(), reply.end());
  restored[0] = static_cast<std::uint8_t>(query->id >> 8);
  restored[1] = static_cast<std::uint8_t>(query->id);
  write_udp(query->asked, query->app, restored);
}

void Tunnel::on_dns_tcp_answer(PacketView answer) {
  deliver_dns_reply(answer);
}

void Tunnel::on_dns_tcp_closed() {
  // Not here: this runs inside the closing connection's own callback.
  if (!dns_over_tcp_retired_.empty()) uv_idle_start(&reaper_, on_idle);
  maybe_stopped();
}

void Tunnel::update_upstream(std::shared_ptr<const Upstream> next) {
  settings_.flow.upstream = std::move(next);
  stop_spares();
}

void Tunnel::stop_spares() {
  for (auto& spare : udp_spares_)
    spare->stop(UdpEnd::switched);
}

void Tunnel::reconfigure(TunnelSettings next, bool reset_open) {
  if (stopping_) return;
  next.framing = settings_.framing;
  next.fake_ip_capacity = settings_.fake_ip_capacity;
  settings_ = std::move(next);
  // Whatever the old upstream said about UDP does not speak for the new one.
  udp_refused_until_ms_ = 0;
  udp_upstream_cap_ = 0;
  udp_spares_paused_until_ms_ = 0;
  socks4_udp_warned_ = false;
  stop_spares();
  if (dns_over_tcp_) {
    dns_over_tcp_->stop();
    dns_over_tcp_retired_.push_back(std::move(dns_over_tcp_));
  }
  if (settings_.dns == DnsMode::tcp && settings_.dns_server) {
    dns_over_tcp_ = std::make_unique<DnsTcpUpstream>(*this, *settings_.dns_server);
  }
  // The shared DNS associations belong to no application: they follow the profile, and
  // queries still in flight on them are retried by their resolver libraries.
  for (auto& [app, session] : udp_sessions_) {
    if (reset_open || app == dns_client_key(app)) session->stop(UdpEnd::switched);
  }
  if (reset_open) {
    for (auto& [key, flow] : flows_)
      flow->stop(CloseReason::switched);
  }
  uv_idle_start(&reaper_, on_idle);
}

void Tunnel::write_udp(const net::Endpoint& source, const net::Endpoint& destination,
                       PacketView payload) {
  if (destination == dns_client_key(destination)) return deliver_dns_reply(payload);
  const auto packets = build_udp_packets(
      source, destination, payload, static_cast<std::size_t>(settings_.framing.mtu), next_ip_id_++);
  if (packets.empty()) return udp_counters_.drop(UdpDrop::bad_reply);
  for (const PacketBytes& packet : packets)
    write_packet(packet);
}

void Tunnel::udp_refused(UdpSession& session) {
  // "Not supported" and "not allowed" speak for every association; any other refusal (a
  // general failure such as the server's association limit) concerns this one only.
  const auto code = static_cast<socks::Socks5Reply>(session.reply_code().value_or(0));
  if (code != socks::Socks5Reply::command_not_supported &&
      code != socks::Socks5Reply::not_allowed) {
    return;
  }
  const std::uint64_t now = uv_now(loop_);
  // One line per refusal period, not one per association or datagram: an upstream that
  // does not do UDP says so to every association alike.
  if (now >= udp_refused_until_ms_) {
    TS_LOG_WARN(
        "udp id=%llu: upstream %s refused UDP ASSOCIATE (%s); UDP datagrams are dropped for "
        "%llu s and counted (udp_dropped_by_reason.no_udp_upstream)",
        static_cast<unsigned long long>(session.id()), session.upstream().display.c_str(),
        session.reply_text().c_str(), static_cast<unsigned long long>(kUdpRefusalMs / 1000));
  }
  udp_refused_until_ms_ = now + kUdpRefusalMs;
}

void Tunnel::udp_finished(UdpSession& session) {
  log_udp_end(session);
  switch (session.spare() ? session.end_reason() : UdpEnd::none) {
    case UdpEnd::none:
    case UdpEnd::idle_timeout:
    case UdpEnd::evicted:
    case UdpEnd::switched:
    case UdpEnd::shutdown:
      break;
    default:
      udp_spares_paused_until_ms_ = uv_now(loop_) + kUdpSparePauseMs;
  }
  udp_finished_.push_back(&session);
  // Destroyed on the next loop turn, never inside one of its own callbacks.
  uv_idle_start(&reaper_, on_idle);
}

void Tunnel::log_udp_end(const UdpSession& session) const {
  if (!net::log_enabled(net::LogLevel::info)) return;
  const std::uint64_t ms = uv_now(loop_) - session.started_ms();
  TS_LOG_INFO(
      "udp id=%llu src=%s upstream=%s relay=%s reply=%s datagrams_up=%llu datagrams_down=%llu "
      "up=%llu down=%llu recycled=%llu ms=%llu end=%s%s%s",
      static_cast<unsigned long long>(session.id()),
      session.spare() ? "spare" : session.app().to_string().c_str(),
      session.upstream().display.c_str(), session.relay_text().c_str(),
      net::log_token(session.reply_text()).c_str(),
      static_cast<unsigned long long>(session.datagrams_up()),
      static_cast<unsigned long long>(session.datagrams_down()),
      static_cast<unsigned long long>(session.bytes_up()),
      static_cast<unsigned long long>(session.bytes_down()),
      static_cast<unsigned long long>(session.recycled()), static_cast<unsigned long long>(ms),
      std::string(describe(session.end_reason())).c_str(),
      session.detail().empty() ? "" : " detail=",
      session.detail().empty() ? "" : detail_token(session.detail()).c_str());
}

void Tunnel::inject_syn(PacketView packet, const FlowKey& key) {
  stack_.input_syn(packet, key);
}

void Tunnel::write_packet(PacketView packet) {
  count_write(tun_.write(packet));
}

void Tunnel::on_lwip_output(PacketPieces packet) {
  count_write(tun_.write(packet));
}

void Tunnel::count_write(int error) {
  // Counted, not logged: TCP resends what a failed write loses, and a flood of failures
  // would flood the log.
  if (error != 0) {
    ++counters_.tun_write_errors;
  } else {
    ++counters_.packets_out;
  }
}

bool Tunnel::on_lwip_accept(tcp_pcb* pcb, const FlowKey& key) {
  if (auto found = flows_.find(key); found != flows_.end()) return found->second->attach(pcb);
  auto found = dns_tcp_.find(key);
  return found != dns_tcp_.end() && found->second->attach(pcb);
}

uv_buf_t Tunnel::read_buffer(std::size_t at_most) {
  if (!read_block_) read_block_.reset(tunsocks_payload_block_new(kReadBuffer));
  if (!read_block_) return uv_buf_init(nullptr, 0);  // out of memory: libuv reports ENOBUFS
  return uv_buf_init(reinterpret_cast<char*>(tunsocks_payload_block_data(read_block_.get())),
                     static_cast<unsigned>(std::min(at_most, kReadBuffer)));
}

PayloadBlockRef Tunnel::adopt_read_buffer(const uv_buf_t& buffer) {
  if (!read_block_ ||
      buffer.base != reinterpret_cast<char*>(tunsocks_payload_block_data(read_block_.get()))) {
    return nullptr;
  }
  return std::move(read_block_);
}

void Tunnel::flow_finished(TcpFlow& flow) {
  log_flow_end(flow);
  finished_.push_back(flow.key());
  // Destroyed on the next loop turn, never inside one of its own callbacks.
  uv_idle_start(&reaper_, on_idle);
}

void Tunnel::on_reap() {
  uv_idle_stop(&reaper_);
  for (const FlowKey& key : std::exchange(finished_, {})) {
    auto found = flows_.find(key);
    if (found == flows_.end()) continue;
    if (found->second->by_name()) fake_ips_.release(key.destination.ip);
    flows_.erase(found);
  }
  for (const FlowKey& key : std::exchange(dns_tcp_finished_, {}))
    dns_tcp_.erase(key);
  std::erase_if(dns_over_tcp_retired_, [](const auto& retired) { return retired->idle(); });
  for (const UdpSession* session : std::exchange(udp_finished_, {})) {
    udp_lru_.erase(session->lru_position);
    for (const UdpSession::Named& named : session->named())
      fake_ips_.release(named.fake.ip);
    auto found = udp_sessions_.find(session->app());
    if (found != udp_sessions_.end() && found->second.get() == session) {
      udp_sessions_.erase(found);
    } else {
      auto is_session = [session](const auto& held) { return held.get() == session; };
      std::erase_if(udp_closing_, is_session);
      std::erase_if(udp_spares_, is_session);
    }
  }
  maybe_stopped();
}

void Tunnel::log_flow_end(const TcpFlow& flow) const {
  if (!net::log_enabled(net::LogLevel::info)) return;
  const std::uint64_t ms = uv_now(loop_) - flow.started_ms();
  const FlowKey& key = flow.key();
  TS_LOG_INFO(
      "flow id=%llu src=%s dst=%s upstream=%s reply=%s up=%llu down=%llu app_in=%llu "
      "app_out=%llu ms=%llu end=%s%s%s",
      static_cast<unsigned long long>(flow.id()), key.source.to_string().c_str(),
      key.destination.to_string().c_str(), flow.upstream().display.c_str(),
      net::log_token(flow.reply_text()).c_str(), static_cast<unsigned long long>(flow.bytes_up()),
      static_cast<unsigned long long>(flow.bytes_down()),
      static_cast<unsigned long long>(flow.app_in()),
      static_cast<unsigned long long>(flow.app_out()), static_cast<unsigned long long>(ms),
      std::string(describe(flow.close_reason())).c_str(), flow.detail().empty() ? "" : " detail=",
      flow.detail().empty() ? "" : detail_token(flow.detail()).c_str());
}

void Tunnel::stop(std::function<void()> done) {
  if (stopping_) return;
  stopping_ = true;
  stopped_ = std::move(done);
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&poll_))) uv_poll_stop(&poll_);
  for (auto& [key, flow] : flows_)
    flow->stop();
  for (auto& [app, session] : udp_sessions_)
    session->stop();
  for (auto& spare : udp_spares_)
    spare->stop();
  for (auto& [key, session] : dns_tcp_)
    session->stop();
  if (dns_over_tcp_) dns_over_tcp_->stop();
  maybe_stopped();
}

void Tunnel::maybe_stopped() {
  if (!stopping_ || !flows_.empty() || !udp_sessions_.empty() || !udp_closing_.empty() ||
      !udp_spares_.empty() || !dns_tcp_.empty() || (dns_over_tcp_ && !dns_over_tcp_->idle()) ||
      !dns_over_tcp_retired_.empty() || handles_open_ == 0) {
    return;
  }
  auto on_closed = [](uv_handle_t* handle) {
    Tunnel* self = tunnel_of(handle->data);
    if (--self->handles_open_ == 0 && self->stopped_) std::exchange(self->stopped_, {})();
  };
  stack_.close();
  auto* poll = reinterpret_cast<uv_handle_t*>(&poll_);
  auto* reaper = reinterpret_cast<uv_handle_t*>(&reaper_);
  auto* spare_timer = reinterpret_cast<uv_handle_t*>(&spare_timer_);
  if (!uv_is_closing(spare_timer)) uv_close(spare_timer, on_closed);
  if (!uv_is_closing(poll)) uv_close(poll, on_closed);
  if (!uv_is_closing(reaper)) uv_close(reaper, on_closed);
}

bool Tunnel::goes_by_name(const net::IpAddress& destination) const {
  // After a switch away from fake-ip, addresses handed out earlier still mean their names;
  // the rest of the pool's range is then an ordinary destination.
  return fake_ips_.contains(destination) &&
         (settings_.dns == DnsMode::fake_ip || fake_ips_.name_of(destination) != nullptr);
}

std::string Tunnel::flows_json() const {
  const std::uint64_t now = uv_now(loop_);
  auto list = nlohmann::json::array();
  for (const auto& [key, flow] : flows_) {
    list.push_back({{"proto", "tcp"},
                    {"id", flow->id()},
                    {"src", key.source.to_string()},
                    {"dst", key.destination.to_string()},
                    {"upstream", flow->upstream().display},
                    {"up", flow->bytes_up()},
                    {"down", flow->bytes_down()},
                    {"age_ms", now - flow->started_ms()}});
  }
  for (const auto& [app, session] : udp_sessions_) {
    list.push_back({{"proto", "udp"},
                    {"id", session->id()},
                    {"src", app == dns_client_key(app) ? "dns" : app.to_string()},
                    {"upstream", session->upstream().display},
                    {"up", session->bytes_up()},
                    {"down", session->bytes_down()},
                    {"age_ms", now - session->started_ms()}});
  }
  return list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Tunnel::counters_json() const {
  auto field = [](const char* name, std::uint64_t value) {
    return "\"" + std::string(name) + "\":" + std::to_string(value);
  };
  std::string json = "{";
  json += field("flows_open", flow_counters_.flows_open) + ",";
  json += field("flows_total", flow_counters_.flows_total) + ",";
  json += field("flows_refused", flow_counters_.flows_refused) + ",";
  json += field("bytes_up", flow_counters_.bytes_up) + ",";
  json += field("bytes_down", flow_counters_.bytes_down) + ",";
  json += field("bytes_from_app", flow_counters_.app_in) + ",";
  json += field("bytes_to_app", flow_counters_.app_out) + ",";
  json += field("packets_in", counters_.packets_in) + ",";
  json += field("packets_out", counters_.packets_out) + ",";
  json += field("lwip_input_errors", stack_.counters().input_errors) + ",";
  json += field("lwip_allocations", LwipStack::live_allocations()) + ",";
  json += field("udp_sessions_open", udp_counters_.sessions_open) + ",";
  json += field("udp_sessions_total", udp_counters_.sessions_total) + ",";
  json += field("udp_sessions_evicted", udp_counters_.sessions_evicted) + ",";
  json += field("udp_setup_retries", udp_counters_.setup_retries) + ",";
  json += field("udp_sessions_recycled", udp_counters_.sessions_recycled) + ",";
  json += field("udp_spares_open", udp_counters_.spares_open) + ",";
  json += field("udp_spares_total", udp_counters_.spares_total) + ",";
  json += field("udp_spares_taken", udp_counters_.spares_taken) + ",";
  json += field("udp_datagrams_up", udp_counters_.datagrams_up) + ",";
  json += field("udp_datagrams_down", udp_counters_.datagrams_down) + ",";
  json += field("udp_bytes_up", udp_counters_.bytes_up) + ",";
  json += field("udp_bytes_down", udp_counters_.bytes_down) + ",";
  json += field("udp_dropped", udp_counters_.dropped) + ",";
  json += "\"udp_dropped_by_reason\":{";
  for (std::size_t i = 0; i < udp_counters_.dropped_by_reason.size(); ++i) {
    if (i != 0) json += ",";
    json += field(std::string(describe(static_cast<UdpDrop>(i))).c_str(),
                  udp_counters_.dropped_by_reason[i]);
  }
  json += "},";
  json += field("icmp_dropped", counters_.icmp_dropped) + ",";
  json += field("pings_answered", counters_.pings_answered) + ",";
  json += field("other_dropped", counters_.other_dropped) + ",";
  json += field("duplicate_syns", counters_.duplicate_syns) + ",";
  json += field("flow_limit_refusals", counters_.flow_limit_refusals) + ",";
  json += field("memory_refusals", memory_guard_.refusals()) + ",";
  json += field("memory_limit", memory_guard_.limit()) + ",";
  json += field("memory_working_set", memory_guard_.working_set()) + ",";
  json += field("tun_read_errors", counters_.tun_read_errors) + ",";
  json += field("tun_write_errors", counters_.tun_write_errors) + ",";
  json += field("dns_answered", counters_.dns_answered) + ",";
  json += field("dns_forwarded", counters_.dns_forwarded) + ",";
  json += field("dns_unmatched", counters_.dns_unmatched) + ",";
  json += field("dns_over_tcp_connections", dns_over_tcp_ ? dns_over_tcp_->connections() : 0) + ",";
  json += field("dns_pool_full", counters_.dns_pool_full) + ",";
  json += field("dns_tcp_connections", counters_.dns_tcp_connections) + ",";
  json += field("fake_ip_entries", fake_ips_.size()) + ",";
  json += field("fake_ip_flows", counters_.fake_ip_flows) + ",";
  json += field("fake_ip_unknown", counters_.fake_ip_unknown) + ",";
  json += "\"malformed\":{";
  for (std::size_t i = 0; i < counters_.malformed.size(); ++i) {
    if (i != 0) json += ",";
    json += "\"" + net::log_token(describe(static_cast<DropReason>(i))) +
            "\":" + std::to_string(counters_.malformed[i]);
  }
  return json + "}}";
}

}  // namespace tunsocks::tunnel
