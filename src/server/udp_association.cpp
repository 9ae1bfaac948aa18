#include "server/udp_association.h"

#include <array>
#include <cstring>
#include <netdb.h>

#include "config/socksd_config.h"
#include "net/log.h"
#include "net/socket_buffers.h"

namespace tunsocks::server {
namespace {

// Bounds: what one association may keep while names resolve, and remember.
constexpr std::size_t kMaxPeers = 1024;
constexpr std::size_t kMaxLookups = 16;
constexpr std::size_t kMaxQueuedPerLookup = 8;
constexpr std::size_t kMaxCachedNames = 256;
constexpr std::uint64_t kNameTtlMs = 30'000;
// Each way of each socket: ~2500 small datagrams (the kernel doubles it), 50 ms at 50000/s,
// where the default holds a few ms (see net/socket_buffers.h). Without CAP_NET_ADMIN the
// kernel caps it at net.core.rmem_max / wmem_max.
constexpr int kSocketBuffer = 1024 * 1024;

void grow_buffers(uv_udp_t* socket) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(socket), &fd) == 0) {
    net::grow_socket_buffers(fd, kSocketBuffer);
  }
}

socks::Address to_socks_address(const net::Endpoint& e) {
  if (e.ip.is_v4()) {
    auto b = e.ip.bytes();
    return socks::Address::ipv4({b[0], b[1], b[2], b[3]}, e.port);
  }
  std::array<std::uint8_t, 16> raw{};
  std::copy(e.ip.bytes().begin(), e.ip.bytes().end(), raw.begin());
  return socks::Address::ipv6(raw, e.port);
}

}  // namespace

uv_buf_t UdpShared::read_buffer() {
  constexpr std::size_t size = kReadSlots * kSlotSize;
  // new char[] leaves the bytes unwritten: the kernel maps a page only when a datagram
  // lands in it.
  if (!read_buffer_) read_buffer_.reset(new char[size]);
  return uv_buf_init(read_buffer_.get(), static_cast<unsigned int>(size));
}

UdpAssociation::UdpAssociation(UdpOwner& owner, UdpContext context)
    : owner_(owner), context_(std::move(context)) {}

UdpAssociation::~UdpAssociation() {
  close();
}

std::expected<net::Endpoint, int> UdpAssociation::open(const net::IpAddress& bind_ip,
                                                       std::uint16_t client_port) {
  client_port_ = client_port;
  int family = bind_ip.is_v4() ? AF_INET : AF_INET6;
  int rc = client_socket_.init([&](uv_udp_t* h) {
    return uv_udp_init_ex(context_.loop, h, static_cast<unsigned>(family) | UV_UDP_RECVMMSG);
  });
  if (rc < 0) return std::unexpected(rc);
  owner_.udp_retain();
  client_socket_.get()->data = this;
  sockaddr_storage address = bind_ip.to_sockaddr(0);
  rc = uv_udp_bind(client_socket_.get(), reinterpret_cast<const sockaddr*>(&address),
                   bind_ip.is_v6() ? UV_UDP_IPV6ONLY : 0);
  if (rc < 0) return std::unexpected(rc);
  grow_buffers(client_socket_.get());
  sockaddr_storage bound{};
  int length = sizeof bound;
  rc = uv_udp_getsockname(client_socket_.get(), reinterpret_cast<sockaddr*>(&bound), &length);
  if (rc < 0) return std::unexpected(rc);
  rc = uv_udp_recv_start(client_socket_.get(), &UdpAssociation::on_alloc,
                         &UdpAssociation::on_client_recv);
  if (rc < 0) return std::unexpected(rc);
  auto endpoint = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&bound));
  if (!endpoint) return std::unexpected(UV_EINVAL);
  return *endpoint;
}

void UdpAssociation::close() {
  if (closed_) return;
  // What the batch holds was accepted and goes before the sockets do.
  flush();
  closed_ = true;
  client_socket_.close(&UdpAssociation::on_handle_closed, this);
  out4_.close(&UdpAssociation::on_handle_closed, this);
  out6_.close(&UdpAssociation::on_handle_closed, this);
  for (auto& [name, lookup] : lookups_) {
    // Cancelled or not, the callback runs once and releases the lookup.
    uv_cancel(reinterpret_cast<uv_req_t*>(&lookup->req));
  }
}

void UdpAssociation::on_handle_closed(void* self) {
  static_cast<UdpAssociation*>(self)->owner_.udp_release();
}

void UdpAssociation::on_alloc(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  *buf = static_cast<UdpAssociation*>(handle->data)->context_.shared->read_buffer();
}

void UdpAssociation::on_client_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                                    const sockaddr* addr, unsigned flags) {
  static_cast<UdpAssociation*>(handle->data)->received(true, nread, buf, addr, flags);
}

void UdpAssociation::on_outbound_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                                      const sockaddr* addr, unsigned flags) {
  static_cast<UdpAssociation*>(handle->data)->received(false, nread, buf, addr, flags);
}

void UdpAssociation::received(bool from_client, ssize_t nread, const uv_buf_t* buf,
                              const sockaddr* addr, unsigned flags) {
  // nread 0 with no address: the socket is drained or a recvmmsg batch is over; < 0: an
  // error such as an ICMP unreachable for an earlier send. Neither is a datagram.
  if (!closed_ && nread > 0 && addr != nullptr) {
    auto datagram = socks::ByteView(reinterpret_cast<const std::uint8_t*>(buf->base),
                                    static_cast<std::size_t>(nread));
    const bool partial = (flags & UV_UDP_PARTIAL) != 0;
    from_client ? relay_up(datagram, addr, partial) : relay_down(datagram, addr, partial);
  }
  // A chunk is one datagram of a recvmmsg batch; any other call ends the batch (or was a
  // read of its own): the moment to send what it collected.
  if ((flags & UV_UDP_MMSG_CHUNK) == 0) flush();
}

void UdpAssociation::relay_up(socks::ByteView bytes, const sockaddr* addr, bool partial) {
  if (partial) return drop();
  auto source = net::Endpoint::from_sockaddr(addr);
  if (!source || source->ip.unmapped() != context_.client_ip.unmapped()) return drop();
  if (client_port_ != 0 && source->port != client_port_) return drop();
  client_port_ = source->port;
  std::memcpy(&client_address_, addr, net::sockaddr_length(addr));
  client_known_ = true;

  auto datagram = socks::parse_udp_datagram(bytes);
  if (!datagram || datagram->header.fragment != 0) return drop();
  const socks::Address& destination = datagram->header.address;
  switch (destination.type) {
    case socks::AddressType::ipv4:
      send_to_any({net::IpAddress::v4({destination.ip[0], destination.ip[1], destination.ip[2],
                                       destination.ip[3]})},
                  destination.port, {}, datagram->payload);
      return;
    case socks::AddressType::ipv6:
      send_to_any({net::IpAddress::v6(destination.ip)}, destination.port, {}, datagram->payload);
      return;
    case socks::AddressType::domain: {
      std::string name = config::normalize_domain(destination.domain);
      auto cached = names_.find(name);
      if (cached != names_.end() && cached->second.expires_ms > uv_now(context_.loop)) {
        send_to_any(cached->second.addresses, destination.port, name, datagram->payload);
        return;
      }
      resolve(name, destination.port, datagram->payload);
      return;
    }
  }
  drop();
}

void UdpAssociation::send_to_any(const std::vector<net::IpAddress>& addresses, std::uint16_t port,
                                 std::string_view domain, socks::ByteView payload) {
  const Decision* first_denial = nullptr;
  Decision denial;
  for (const net::IpAddress& raw : addresses) {
    net::IpAddress ip = raw.unmapped();
    RequestFacts facts;
    facts.command = config::Command::udp_associate;
    facts.client = context_.client_ip;
    facts.user = context_.user;
    facts.domain = domain;
    facts.address = ip;
    facts.port = port;
    Decision decision = context_.policy->decide(facts, context_.protected_listener);
    if (!decision.allowed()) {
      if (first_denial == nullptr) {
        denial = std::move(decision);
        first_denial = &denial;
      }
      continue;
    }
    uv_udp_t* socket = outbound_socket(ip.is_v4());
    if (socket == nullptr) continue;
    sockaddr_storage to = ip.to_sockaddr(port);
    remember_peer(net::Endpoint{ip, port});
    return queue(socket, {}, payload, reinterpret_cast<const sockaddr*>(&to), true);
  }
  if (first_denial != nullptr && !warned_denial_) {
    // One line per association, not per datagram: the rest are only counted.
    warned_denial_ = true;
    std::string target = domain.empty() && !addresses.empty()
                             ? net::Endpoint{addresses.front().unmapped(), port}.to_string()
                             : net::log_token(domain) + ":" + std::to_string(port);
    TS_LOG_WARN("sid=%llu udp datagram to %s dropped: %s (further denials are only counted)",
                static_cast<unsigned long long>(context_.session_id), target.c_str(),
                first_denial->reason.c_str());
  }
  drop();
}

uv_udp_t* UdpAssociation::outbound_socket(bool v4) {
  net::UvHandle<uv_udp_t>& socket = v4 ? out4_ : out6_;
  bool& failed = v4 ? out4_failed_ : out6_failed_;
  if (socket) return socket.get();
  if (failed) return nullptr;
  int family = v4 ? AF_INET : AF_INET6;
  int rc = socket.init([&](uv_udp_t* h) {
    return uv_udp_init_ex(context_.loop, h, static_cast<unsigned>(family) | UV_UDP_RECVMMSG);
  });
  if (rc < 0) {
    failed = true;
    return nullptr;
  }
  owner_.udp_retain();
  socket.get()->data = this;
  net::IpAddress any = v4 ? net::IpAddress{} : net::IpAddress::v6({});
  sockaddr_storage address = any.to_sockaddr(0);
  rc = uv_udp_bind(socket.get(), reinterpret_cast<const sockaddr*>(&address),
                   v4 ? 0 : UV_UDP_IPV6ONLY);
  if (rc == 0) {
    grow_buffers(socket.get());
    rc = uv_udp_recv_start(socket.get(), &UdpAssociation::on_alloc,
                           &UdpAssociation::on_outbound_recv);
  }
  if (rc < 0) {
    // No IPv6 on this host, typically: remember it instead of retrying per datagram.
    failed = true;
    socket.close(&UdpAssociation::on_handle_closed, this);
    return nullptr;
  }
  return socket.get();
}

void UdpAssociation::remember_peer(const net::Endpoint& peer) {
  if (peers_.contains(peer)) return;
  if (peers_.size() >= kMaxPeers) {
    peers_.erase(peer_order_.front());
    peer_order_.pop_front();
  }
  peers_.insert(peer);
  peer_order_.push_back(peer);
}

void UdpAssociation::relay_down(socks::ByteView payload, const sockaddr* addr, bool partial) {
  if (partial || !client_known_) return drop();
  auto source = net::Endpoint::from_sockaddr(addr);
  if (!source) return drop();
  source->ip = source->ip.unmapped();
  if (!peers_.contains(*source)) return drop();

  std::array<std::uint8_t, 32> header{};
  auto written = socks::write_udp_header(socks::UdpHeader{0, to_socks_address(*source)}, header);
  if (!written) return drop();
  queue(client_socket_.get(), socks::ByteView(header.data(), *written), payload,
        reinterpret_cast<const sockaddr*>(&client_address_), false);
}

void UdpAssociation::queue(uv_udp_t* socket, socks::ByteView header, socks::ByteView payload,
                           const sockaddr* to, bool up) {
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(socket), &fd) < 0) return drop();
  net::DatagramBatch& batch = context_.shared->batch();
  if (!batch.add(fd, header, payload, to)) {
    flush();
    if (!batch.add(fd, header, payload, to)) return drop();
  }
  batch_up_ = up;
}

void UdpAssociation::flush() {
  net::DatagramBatch& batch = context_.shared->batch();
  if (batch.empty()) return;
  const net::BatchResult result = batch.flush();
  context_.counters->udp_datagrams_dropped += result.dropped;
  if (result.sent == 0) return;
  (batch_up_ ? up_ : down_) += result.sent_bytes;
  (batch_up_ ? context_.counters->bytes_up : context_.counters->bytes_down) += result.sent_bytes;
  (batch_up_ ? context_.counters->udp_datagrams_up : context_.counters->udp_datagrams_down) +=
      result.sent;
  owner_.udp_moved(batch_up_, result.sent_bytes);
}

void UdpAssociation::resolve(const std::string& name, std::uint16_t port, socks::ByteView payload) {
  auto it = lookups_.find(name);
  if (it != lookups_.end()) {
    if (it->second->queued.size() >= kMaxQueuedPerLookup) return drop();
    it->second->queued.push_back({{payload.begin(), payload.end()}, port});
    return;
  }
  if (lookups_.size() >= kMaxLookups) return drop();
  auto lookup = std::make_unique<Lookup>();
  lookup->self = this;
  lookup->name = name;
  lookup->req.data = lookup.get();
  lookup->queued.push_back({{payload.begin(), payload.end()}, port});
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  int rc = uv_getaddrinfo(context_.loop, &lookup->req, &UdpAssociation::on_resolved, name.c_str(),
                          nullptr, &hints);
  if (rc < 0) return drop();  // the request never started: nothing to release later
  owner_.udp_retain();
  lookups_.emplace(name, std::move(lookup));
}

void UdpAssociation::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result) {
  auto* lookup = static_cast<Lookup*>(req->data);
  lookup->self->resolved(*lookup, status, result);
}

void UdpAssociation::resolved(Lookup& lookup, int status, addrinfo* result) {
  auto node = lookups_.extract(lookup.name);  // owns the lookup until this returns
  if (!closed_) {
    if (status < 0) {
      ++context_.counters->resolve_failures;
      context_.counters->udp_datagrams_dropped += lookup.queued.size();
    } else {
      std::vector<net::IpAddress> addresses;
      for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
        auto ip = net::IpAddress::from_sockaddr(ai->ai_addr);
        if (ip && std::find(addresses.begin(), addresses.end(), *ip) == addresses.end()) {
          addresses.push_back(*ip);
        }
      }
      if (names_.size() >= kMaxCachedNames) names_.clear();
      names_[lookup.name] = CachedName{addresses, uv_now(context_.loop) + kNameTtlMs};
      for (const Queued& q : lookup.queued) {
        send_to_any(addresses, q.port, lookup.name, socks::ByteView(q.payload));
      }
      flush();  // before the queued payloads go with the lookup
    }
  }
  uv_freeaddrinfo(result);
  node = {};
  owner_.udp_release();  // last: the owner may be waiting for this
}

}  // namespace tunsocks::server
