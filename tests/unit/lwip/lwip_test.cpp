// lwIP as tunsocks builds it (third_party/lwip): the patches that make one listening pcb
// accept every destination address and port arriving on the TUN netif, and the lwipopts.h
// choices a flow depends on (MSS from the MTU, window scaling, SACK, checksum checks).
//
// Hermetic: a fake netif whose output captures packets, hand-built SYN/ACK packets fed to
// netif->input, an injected clock. No privileges, no sockets. Addresses come from the
// documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <ostream>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <lwip/init.h>
#include <lwip/ip_addr.h>
#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/stats.h>
#include <lwip/sys.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>

#include "tunsocks_lwip_port.h"

namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t kFin = 0x01;
constexpr std::uint8_t kSyn = 0x02;
constexpr std::uint8_t kRst = 0x04;
constexpr std::uint8_t kAck = 0x10;
constexpr std::uint8_t kProtoTcp = 6;

// ---- addresses ------------------------------------------------------------------------

struct Address {
  std::array<std::uint8_t, 16> bytes{};
  std::size_t size = 0;  // 4 or 16

  bool operator==(const Address&) const = default;
  std::span<const std::uint8_t> view() const { return {bytes.data(), size}; }
};

std::ostream& operator<<(std::ostream& out, const Address& address) {
  if (address.size == 4) {
    return out << int{address.bytes[0]} << '.' << int{address.bytes[1]} << '.'
               << int{address.bytes[2]} << '.' << int{address.bytes[3]};
  }
  constexpr std::string_view kHex = "0123456789abcdef";
  for (std::size_t i = 0; i < address.size; ++i) {
    if (i > 0 && i % 2 == 0) out << ':';
    out << kHex[address.bytes[i] >> 4] << kHex[address.bytes[i] & 0xF];
  }
  return out;
}

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
  Address address;
  address.bytes = {a, b, c, d};
  address.size = 4;
  return address;
}

// 2001:db8:<group2>::<last>
Address v6(std::uint16_t group2, std::uint16_t last) {
  Address address;
  address.bytes = {0x20, 0x01, 0x0d, 0xb8};
  address.bytes[4] = static_cast<std::uint8_t>(group2 >> 8);
  address.bytes[5] = static_cast<std::uint8_t>(group2 & 0xFF);
  address.bytes[14] = static_cast<std::uint8_t>(last >> 8);
  address.bytes[15] = static_cast<std::uint8_t>(last & 0xFF);
  address.size = 16;
  return address;
}

// lwIP keeps addresses in network byte order, so the bytes are the wire bytes.
Address from_lwip(const ip_addr_t& ip) {
  Address address;
  if (IP_IS_V6_VAL(ip)) {
    address.size = 16;
    std::memcpy(address.bytes.data(), ip_2_ip6(&ip)->addr, 16);
  } else {
    address.size = 4;
    std::memcpy(address.bytes.data(), &ip_2_ip4(&ip)->addr, 4);
  }
  return address;
}

ip4_addr_t to_ip4(const Address& address) {
  ip4_addr_t ip{};
  std::memcpy(&ip.addr, address.bytes.data(), 4);
  return ip;
}

ip6_addr_t to_ip6(const Address& address) {
  ip6_addr_t ip{};
  std::memcpy(ip.addr, address.bytes.data(), 16);
  return ip;
}

// ---- packet building and parsing ------------------------------------------------------

void put16(Bytes& out, std::size_t at, std::uint16_t value) {
  out[at] = static_cast<std::uint8_t>(value >> 8);
  out[at + 1] = static_cast<std::uint8_t>(value & 0xFF);
}

void put32(Bytes& out, std::size_t at, std::uint32_t value) {
  put16(out, at, static_cast<std::uint16_t>(value >> 16));
  put16(out, at + 2, static_cast<std::uint16_t>(value & 0xFFFF));
}

std::uint16_t get16(std::span<const std::uint8_t> in, std::size_t at) {
  return static_cast<std::uint16_t>((in[at] << 8) | in[at + 1]);
}

std::uint32_t get32(std::span<const std::uint8_t> in, std::size_t at) {
  return (std::uint32_t{get16(in, at)} << 16) | get16(in, at + 2);
}

// RFC 1071 one's-complement sum, unfolded.
std::uint32_t add_ones_complement(std::uint32_t sum, std::span<const std::uint8_t> data) {
  for (std::size_t i = 0; i + 1 < data.size(); i += 2)
    sum += get16(data, i);
  if (data.size() % 2 != 0) sum += std::uint32_t{data.back()} << 8;
  return sum;
}

std::uint16_t fold(std::uint32_t sum) {
  while (sum > 0xFFFF)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(sum);
}

// Sum of the TCP pseudo-header (RFC 793 for IPv4, RFC 8200 section 8.1 for IPv6).
std::uint32_t pseudo_header_sum(const Address& src, const Address& dst, std::size_t tcp_length) {
  std::uint32_t sum = add_ones_complement(0, src.view());
  sum = add_ones_complement(sum, dst.view());
  sum += kProtoTcp;
  sum += static_cast<std::uint32_t>(tcp_length & 0xFFFF);
  sum += static_cast<std::uint32_t>(tcp_length >> 16);
  return sum;
}

struct TcpSpec {
  Address src{};
  std::uint16_t src_port = 0;
  Address dst{};
  std::uint16_t dst_port = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;
  Bytes options{};  // already padded to a multiple of 4
  bool corrupt_tcp_checksum = false;
};

// The options a Linux client puts in its SYN that matter here: MSS, window scale, SACK.
Bytes syn_options(std::uint16_t mss) {
  const auto mss_high = static_cast<std::uint8_t>(mss >> 8);
  const auto mss_low = static_cast<std::uint8_t>(mss & 0xFF);
  Bytes options = {2, 4, mss_high, mss_low};    // MSS
  options.insert(options.end(), {1, 3, 3, 7});  // NOP, window scale: shift 7
  options.insert(options.end(), {1, 1, 4, 2});  // NOP, NOP, SACK permitted
  return options;
}

// One IPv4 or IPv6 packet carrying one TCP segment without payload, checksums filled in.
Bytes build_tcp_packet(const TcpSpec& spec) {
  REQUIRE(spec.src.size == spec.dst.size);
  REQUIRE(spec.options.size() % 4 == 0);
  const std::size_t ip_length = spec.src.size == 4 ? 20 : 40;
  const std::size_t tcp_length = 20 + spec.options.size();
  Bytes packet(ip_length + tcp_length, 0);

  if (spec.src.size == 4) {
    packet[0] = 0x45;  // version 4, 5 header words
    put16(packet, 2, static_cast<std::uint16_t>(packet.size()));
    put16(packet, 4, 0x1234);  // identification
    put16(packet, 6, 0x4000);  // don't fragment
    packet[8] = 64;            // TTL
    packet[9] = kProtoTcp;
    std::copy_n(spec.src.bytes.begin(), 4, packet.begin() + 12);
    std::copy_n(spec.dst.bytes.begin(), 4, packet.begin() + 16);
    const auto header = std::span<const std::uint8_t>(packet).first(20);
    put16(packet, 10, static_cast<std::uint16_t>(~fold(add_ones_complement(0, header))));
  } else {
    packet[0] = 0x60;  // version 6, traffic class and flow label 0
    put16(packet, 4, static_cast<std::uint16_t>(tcp_length));
    packet[6] = kProtoTcp;  // next header
    packet[7] = 64;         // hop limit
    std::copy_n(spec.src.bytes.begin(), 16, packet.begin() + 8);
    std::copy_n(spec.dst.bytes.begin(), 16, packet.begin() + 24);
  }

  const std::size_t t = ip_length;
  put16(packet, t + 0, spec.src_port);
  put16(packet, t + 2, spec.dst_port);
  put32(packet, t + 4, spec.seq);
  put32(packet, t + 8, spec.ack);
  packet[t + 12] = static_cast<std::uint8_t>((tcp_length / 4) << 4);
  packet[t + 13] = spec.flags;
  put16(packet, t + 14, 0xFFFF);  // window
  std::copy(spec.options.begin(), spec.options.end(), packet.begin() + t + 20);
  const auto segment = std::span<const std::uint8_t>(packet).subspan(t);
  auto checksum = static_cast<std::uint16_t>(
      ~fold(add_ones_complement(pseudo_header_sum(spec.src, spec.dst, tcp_length), segment)));
  if (spec.corrupt_tcp_checksum) checksum ^= 0x5555;
  put16(packet, t + 16, checksum);
  return packet;
}

// Splits an unfragmented IPv4/IPv6 packet into two fragments; the first carries
// `first_length` bytes of the IP payload (a multiple of 8, as RFC 791/8200 require).
std::vector<Bytes> fragment_in_two(const Bytes& packet, std::size_t first_length) {
  REQUIRE(first_length % 8 == 0);
  constexpr std::uint32_t kIdentification = 0x5eed;
  const bool is_v6 = packet[0] >> 4 == 6;
  const std::size_t header_length = is_v6 ? 40 : 20;
  REQUIRE(packet.size() > header_length + first_length);
  const std::span<const std::uint8_t> header(packet.data(), header_length);
  const std::span<const std::uint8_t> payload(packet.data() + header_length,
                                              packet.size() - header_length);
  std::vector<Bytes> fragments;
  for (const bool first : {true, false}) {
    const auto data = first ? payload.first(first_length) : payload.subspan(first_length);
    const auto offset_units = static_cast<std::uint16_t>(first ? 0 : first_length / 8);
    Bytes out(header.begin(), header.end());
    if (is_v6) {
      out[6] = 44;  // next header: fragment
      const std::size_t at = out.size();
      out.resize(at + 8);
      out[at] = kProtoTcp;  // the fragment header's next header
      put16(out, at + 2, static_cast<std::uint16_t>((offset_units << 3) | (first ? 1 : 0)));
      put32(out, at + 4, kIdentification);
      out.insert(out.end(), data.begin(), data.end());
      put16(out, 4, static_cast<std::uint16_t>(out.size() - 40));
    } else {
      out.insert(out.end(), data.begin(), data.end());
      put16(out, 2, static_cast<std::uint16_t>(out.size()));
      put16(out, 4, static_cast<std::uint16_t>(kIdentification));
      put16(out, 6, static_cast<std::uint16_t>((first ? 0x2000 : 0) | offset_units));  // MF
      put16(out, 10, 0);
      const auto checksum = fold(add_ones_complement(0, std::span(out).first(20)));
      put16(out, 10, static_cast<std::uint16_t>(~checksum));
    }
    fragments.push_back(std::move(out));
  }
  return fragments;
}

struct Segment {
  Address src;
  Address dst;
  std::uint16_t src_port = 0;
  std::uint16_t dst_port = 0;
  std::uint32_t seq = 0;
  std::uint32_t ack = 0;
  std::uint8_t flags = 0;
  std::optional<std::uint16_t> mss;
  std::optional<std::uint8_t> window_scale;
  bool sack_permitted = false;
  bool ip_checksum_ok = true;  // IPv6 has none
  bool tcp_checksum_ok = false;
};

// Parses a packet lwIP sent; nullopt if it is not a well-formed IPv4/IPv6 TCP packet.
std::optional<Segment> parse_tcp_packet(std::span<const std::uint8_t> packet) {
  Segment segment;
  std::size_t ip_length = 0;
  if (packet.size() >= 20 && packet[0] >> 4 == 4) {
    ip_length = std::size_t{packet[0] & 0x0Fu} * 4;
    if (packet[9] != kProtoTcp || get16(packet, 2) != packet.size()) return std::nullopt;
    segment.src = v4(packet[12], packet[13], packet[14], packet[15]);
    segment.dst = v4(packet[16], packet[17], packet[18], packet[19]);
    segment.ip_checksum_ok = fold(add_ones_complement(0, packet.first(ip_length))) == 0xFFFF;
  } else if (packet.size() >= 40 && packet[0] >> 4 == 6) {
    ip_length = 40;
    if (packet[6] != kProtoTcp || get16(packet, 4) + 40u != packet.size()) return std::nullopt;
    segment.src.size = segment.dst.size = 16;
    std::copy_n(packet.begin() + 8, 16, segment.src.bytes.begin());
    std::copy_n(packet.begin() + 24, 16, segment.dst.bytes.begin());
  } else {
    return std::nullopt;
  }
  const auto tcp = packet.subspan(ip_length);
  if (tcp.size() < 20) return std::nullopt;
  const auto header_length = static_cast<std::size_t>(tcp[12] >> 4) * 4;
  if (header_length < 20 || header_length > tcp.size()) return std::nullopt;
  segment.src_port = get16(tcp, 0);
  segment.dst_port = get16(tcp, 2);
  segment.seq = get32(tcp, 4);
  segment.ack = get32(tcp, 8);
  segment.flags = tcp[13];
  segment.tcp_checksum_ok =
      fold(add_ones_complement(pseudo_header_sum(segment.src, segment.dst, tcp.size()), tcp)) ==
      0xFFFF;
  for (std::size_t i = 20; i < header_length;) {
    const std::uint8_t kind = tcp[i];
    if (kind == 0) break;
    if (kind == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= header_length || tcp[i + 1] < 2 || i + tcp[i + 1] > header_length) {
      return std::nullopt;
    }
    if (kind == 2 && tcp[i + 1] == 4) segment.mss = get16(tcp, i + 2);
    if (kind == 3 && tcp[i + 1] == 3) segment.window_scale = tcp[i + 2];
    if (kind == 4 && tcp[i + 1] == 2) segment.sack_permitted = true;
    i += tcp[i + 1];
  }
  return segment;
}

// ---- the stack under test -------------------------------------------------------------

std::uint32_t fake_clock_ms = 0;

std::uint32_t read_fake_clock(void* context) {
  return *static_cast<std::uint32_t*>(context);
}

void ensure_lwip_initialized() {
  // lwIP is process-global state (NO_SYS): initialise once, reuse across test cases.
  static const bool initialized = [] {
    lwip_init();
    return true;
  }();
  (void)initialized;
}

struct Listener {
  tcp_pcb* pcb = nullptr;
  std::vector<tcp_pcb*> accepted;
};

err_t on_accept(void* arg, tcp_pcb* pcb, err_t err) {
  auto* listener = static_cast<Listener*>(arg);
  if (err != ERR_OK || pcb == nullptr) return ERR_VAL;
  listener->accepted.push_back(pcb);
  return ERR_OK;
}

// One TUN-like netif (layer 3, no link header) plus the listeners of a test case. Its
// destructor aborts every pcb and removes the netif, so each case starts from nothing.
class Stack {
 public:
  struct Options {
    bool accept_any_destination = true;
    std::uint16_t mtu = 1500;
    bool own_ipv4 = true;               // kOwnIpv4/24 configured on the netif
    std::optional<Address> own_ipv6{};  // an IPv6 address configured on the netif
  };

  explicit Stack(Options options) : mtu_(options.mtu) {
    tunsocks_lwip_set_clock(read_fake_clock, &fake_clock_ms);
    ensure_lwip_initialized();
#if LWIP_STATS && MEM_STATS
    heap_used_at_start_ = lwip_stats.mem.used;
#endif
    if (options.own_ipv4) {
      const ip4_addr_t address = to_ip4(kOwnIpv4);
      const ip4_addr_t netmask = to_ip4(v4(255, 255, 255, 0));
      const ip4_addr_t gateway = to_ip4(v4(192, 0, 2, 2));
      REQUIRE(netif_add(&netif_, &address, &netmask, &gateway, this, &Stack::init_netif,
                        netif_input) != nullptr);
    } else {
      REQUIRE(netif_add_noaddr(&netif_, this, &Stack::init_netif, netif_input) != nullptr);
    }
    if (options.accept_any_destination) netif_set_flags(&netif_, NETIF_FLAG_ACCEPT_ANY_DST);
    if (options.own_ipv6) {
      const ip6_addr_t own = to_ip6(*options.own_ipv6);
      s8_t index = -1;
      REQUIRE(netif_add_ip6_address(&netif_, &own, &index) == ERR_OK);
      netif_ip6_addr_set_state(&netif_, index, IP6_ADDR_PREFERRED);
    }
    netif_set_default(&netif_);
    netif_set_link_up(&netif_);
    netif_set_up(&netif_);
  }

  ~Stack() {
    // tcp_abort unlinks the pcb from its list, so the heads advance.
    while (tcp_active_pcbs != nullptr)
      tcp_abort(tcp_active_pcbs);
    while (tcp_tw_pcbs != nullptr)
      tcp_abort(tcp_tw_pcbs);
    for (Listener* listener : listeners_)
      tcp_close(listener->pcb);
    netif_remove(&netif_);
    // lwIP arms its TCP timer when the first pcb appears and disarms it (freeing the
    // timeout) only when it fires with no pcbs left: let it fire on the injected clock.
    fake_clock_ms += 2 * TCP_TMR_INTERVAL;
    sys_check_timeouts();
    tunsocks_lwip_set_clock(nullptr, nullptr);
#if LWIP_STATS && MEM_STATS
    // Everything this case allocated in lwIP (pcbs, segments, pbufs, timeouts) is back.
    CHECK(lwip_stats.mem.used == heap_used_at_start_);
#endif
  }

  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;

  static inline const Address kOwnIpv4 = v4(192, 0, 2, 1);

  // The tunsocks listener: never bound (port 0), any address family.
  void listen_everywhere(Listener& listener) {
    listen(listener, nullptr);
  }

  // A conventional listener bound to one port on every address.
  void listen_on_port(Listener& listener, std::uint16_t port) {
    listen(listener, &port);
  }

  void inject(const Bytes& packet) {
    pbuf* p = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(packet.size()), PBUF_RAM);
    REQUIRE(p != nullptr);
    REQUIRE(pbuf_take(p, packet.data(), static_cast<u16_t>(packet.size())) == ERR_OK);
    if (netif_.input(p, &netif_) != ERR_OK) pbuf_free(p);
  }

  std::vector<Bytes> take_sent() {
    return std::exchange(sent_, {});
  }

  // SYN in, SYN-ACK out, ACK in. Returns the SYN-ACK, or nullopt if lwIP sent anything else.
  std::optional<Segment> handshake(const Address& src, std::uint16_t src_port, const Address& dst,
                                   std::uint16_t dst_port) {
    constexpr std::uint32_t kClientIsn = 1000;
    inject(build_tcp_packet({.src = src,
                             .src_port = src_port,
                             .dst = dst,
                             .dst_port = dst_port,
                             .seq = kClientIsn,
                             .flags = kSyn,
                             .options = syn_options(1460)}));
    const auto sent = take_sent();
    if (sent.size() != 1) return std::nullopt;
    const auto syn_ack = parse_tcp_packet(sent.front());
    if (!syn_ack || syn_ack->flags != (kSyn | kAck) || syn_ack->ack != kClientIsn + 1) {
      return std::nullopt;
    }
    inject(build_tcp_packet({.src = src,
                             .src_port = src_port,
                             .dst = dst,
                             .dst_port = dst_port,
                             .seq = kClientIsn + 1,
                             .ack = syn_ack->seq + 1,
                             .flags = kAck}));
    return syn_ack;
  }

 private:
  static err_t init_netif(netif* nif) {
    auto* self = static_cast<Stack*>(nif->state);
    nif->name[0] = 't';
    nif->name[1] = 'u';
    nif->mtu = self->mtu_;
    nif->output = &Stack::on_output_ip4;
    nif->output_ip6 = &Stack::on_output_ip6;
    return ERR_OK;
  }

  static err_t on_output_ip4(netif* nif, pbuf* p, const ip4_addr_t*) {
    static_cast<Stack*>(nif->state)->capture(p);
    return ERR_OK;
  }

  static err_t on_output_ip6(netif* nif, pbuf* p, const ip6_addr_t*) {
    static_cast<Stack*>(nif->state)->capture(p);
    return ERR_OK;
  }

  // Runs inside lwIP's C frames: CHECK, never REQUIRE (an exception must not cross them).
  void capture(const pbuf* p) {
    Bytes packet(p->tot_len);
    CHECK(pbuf_copy_partial(p, packet.data(), p->tot_len, 0) == p->tot_len);
    sent_.push_back(std::move(packet));
  }

  void listen(Listener& listener, const std::uint16_t* port) {
    tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
    REQUIRE(pcb != nullptr);
    if (port != nullptr) REQUIRE(tcp_bind(pcb, IP_ANY_TYPE, *port) == ERR_OK);
    listener.pcb = tcp_listen(pcb);
    REQUIRE(listener.pcb != nullptr);
    tcp_arg(listener.pcb, &listener);
    tcp_accept(listener.pcb, on_accept);
    listeners_.push_back(&listener);
  }

  netif netif_{};
  std::uint16_t mtu_;
  std::vector<Bytes> sent_;
  std::vector<Listener*> listeners_;
#if LWIP_STATS && MEM_STATS
  mem_size_t heap_used_at_start_ = 0;
#endif
};

struct Flow {
  Address src;
  std::uint16_t src_port;
  Address dst;
  std::uint16_t dst_port;
};

// Runs each flow's handshake against `stack` and checks what a TcpSession relies on: one
// SYN-ACK from the flow's destination, and an accepted pcb whose local end is the
// destination and whose remote end is the source.
void check_every_flow_is_accepted(Stack& stack, Listener& listener,
                                  const std::vector<Flow>& flows) {
  for (const Flow& flow : flows) {
    CAPTURE(flow.dst);
    CAPTURE(flow.dst_port);
    const auto syn_ack = stack.handshake(flow.src, flow.src_port, flow.dst, flow.dst_port);
    REQUIRE(syn_ack.has_value());
    CHECK(syn_ack->src == flow.dst);
    CHECK(syn_ack->src_port == flow.dst_port);
    CHECK(syn_ack->dst == flow.src);
    CHECK(syn_ack->dst_port == flow.src_port);
    CHECK(syn_ack->ip_checksum_ok);
    CHECK(syn_ack->tcp_checksum_ok);
  }
  REQUIRE(listener.accepted.size() == flows.size());
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const tcp_pcb* pcb = listener.accepted[i];
    CAPTURE(i);
    CHECK(pcb->state == ESTABLISHED);
    CHECK(from_lwip(pcb->local_ip) == flows[i].dst);
    CHECK(pcb->local_port == flows[i].dst_port);
    CHECK(from_lwip(pcb->remote_ip) == flows[i].src);
    CHECK(pcb->remote_port == flows[i].src_port);
  }
}

}  // namespace

TEST_CASE("syn_to_any_ipv4_destination_is_accepted") {
  Stack stack({});
  Listener listener;
  stack.listen_everywhere(listener);
  const Address app = v4(192, 0, 2, 2);
  check_every_flow_is_accepted(stack, listener,
                               {
                                   {app, 40001, v4(203, 0, 113, 10), 443},
                                   {app, 40002, v4(198, 51, 100, 20), 8080},
                                   {app, 40003, v4(203, 0, 113, 10), 8080},
                                   {app, 40004, v4(198, 51, 100, 20), 443},
                               });
}

TEST_CASE("syn_to_any_ipv6_destination_is_accepted") {
  Stack stack({});
  Listener listener;
  stack.listen_everywhere(listener);
  const Address app = v6(0, 2);
  check_every_flow_is_accepted(stack, listener,
                               {
                                   {app, 40001, v6(1, 0x10), 443},
                                   {app, 40002, v6(2, 0x20), 8080},
                               });
}

TEST_CASE("one_listener_accepts_ipv4_and_ipv6_flows_together") {
  Stack stack({});
  Listener listener;
  stack.listen_everywhere(listener);
  check_every_flow_is_accepted(stack, listener,
                               {
                                   {v4(192, 0, 2, 2), 40001, v4(203, 0, 113, 10), 443},
                                   {v6(0, 2), 40002, v6(1, 0x10), 443},
                                   {v4(192, 0, 2, 2), 40003, v4(198, 51, 100, 20), 8080},
                                   {v6(0, 2), 40004, v6(2, 0x20), 8080},
                               });
}

TEST_CASE("flagged_netif_without_addresses_answers_ipv4_and_ipv6") {
  // A TUN netif needs no address of its own: input takes every destination, and output
  // (stock ip4_route refuses an address-less default netif) still finds the netif.
  Stack stack({.own_ipv4 = false});
  Listener listener;
  stack.listen_everywhere(listener);
  check_every_flow_is_accepted(stack, listener,
                               {
                                   {v4(192, 0, 2, 2), 40001, v4(203, 0, 113, 10), 443},
                                   {v6(0, 2), 40002, v6(1, 0x10), 8080},
                               });
}

TEST_CASE("syn_to_foreign_address_is_dropped_without_accept_any_dst_flag") {
  const Address own_ipv6 = v6(0, 1);
  Stack stack({.accept_any_destination = false, .own_ipv6 = own_ipv6});
  Listener listener;
  stack.listen_everywhere(listener);

  // Stock lwIP behaviour: not our address, not our packet. No SYN-ACK, no RST, no pcb.
  stack.inject(build_tcp_packet({.src = v4(192, 0, 2, 2),
                                 .src_port = 40001,
                                 .dst = v4(203, 0, 113, 10),
                                 .dst_port = 443,
                                 .seq = 1000,
                                 .flags = kSyn,
                                 .options = syn_options(1460)}));
  stack.inject(build_tcp_packet({.src = v6(0, 2),
                                 .src_port = 40002,
                                 .dst = v6(1, 0x10),
                                 .dst_port = 443,
                                 .seq = 1000,
                                 .flags = kSyn,
                                 .options = syn_options(1440)}));
  CHECK(stack.take_sent().empty());
  CHECK(listener.accepted.empty());
  CHECK(tcp_active_pcbs == nullptr);

  // The netif's own addresses still work, and the port-0 listener still takes any port.
  check_every_flow_is_accepted(stack, listener,
                               {
                                   {v4(192, 0, 2, 2), 40003, Stack::kOwnIpv4, 443},
                                   {v6(0, 2), 40004, own_ipv6, 8080},
                               });
}

TEST_CASE("listener_bound_to_the_port_wins_over_port_zero_listener") {
  Stack stack({});
  Listener everywhere;
  Listener on_8080;
  // The wildcard is created first, so it sits later in lwIP's listen list; after the first
  // match it is moved to the front. Either way the bound listener must win for its port.
  stack.listen_everywhere(everywhere);
  stack.listen_on_port(on_8080, 8080);
  const Address app = v4(192, 0, 2, 2);
  REQUIRE(stack.handshake(app, 40001, v4(203, 0, 113, 10), 443).has_value());
  REQUIRE(stack.handshake(app, 40002, v4(203, 0, 113, 10), 8080).has_value());
  REQUIRE(stack.handshake(app, 40003, v4(198, 51, 100, 20), 443).has_value());
  REQUIRE(stack.handshake(app, 40004, v4(198, 51, 100, 20), 8080).has_value());
  REQUIRE(everywhere.accepted.size() == 2);
  REQUIRE(on_8080.accepted.size() == 2);
  for (const tcp_pcb* pcb : everywhere.accepted)
    CHECK(pcb->local_port == 443);
  for (const tcp_pcb* pcb : on_8080.accepted)
    CHECK(pcb->local_port == 8080);
}

TEST_CASE("syn_to_destination_port_zero_is_reset_not_accepted") {
  Stack stack({});
  Listener listener;
  stack.listen_everywhere(listener);
  stack.inject(build_tcp_packet({.src = v4(192, 0, 2, 2),
                                 .src_port = 40001,
                                 .dst = v4(203, 0, 113, 10),
                                 .dst_port = 0,
                                 .seq = 1000,
                                 .flags = kSyn,
                                 .options = syn_options(1460)}));
  const auto sent = stack.take_sent();
  REQUIRE(sent.size() == 1);
  const auto reply = parse_tcp_packet(sent.front());
  REQUIRE(reply.has_value());
  CHECK((reply->flags & kRst) != 0);
  CHECK((reply->flags & (kSyn | kFin)) == 0);
  CHECK(listener.accepted.empty());
  CHECK(tcp_active_pcbs == nullptr);
}

TEST_CASE("syn_with_bad_tcp_checksum_is_dropped") {
  Stack stack({});
  Listener listener;
  stack.listen_everywhere(listener);
  stack.inject(build_tcp_packet({.src = v4(192, 0, 2, 2),
                                 .src_port = 40001,
                                 .dst = v4(203, 0, 113, 10),
                                 .dst_port = 443,
                                 .seq = 1000,
                                 .flags = kSyn,
                                 .options = syn_options(1460),
                                 .corrupt_tcp_checksum = true}));
  CHECK(stack.take_sent().empty());
  CHECK(tcp_active_pcbs == nullptr);
}

TEST_CASE("syn_ack_offers_mss_from_the_netif_mtu_window_scale_and_sack") {
  struct Case {
    std::uint16_t mtu;
    Address src;
    Address dst;
    std::uint16_t expected_mss;
  };
  // MSS = MTU - IP header - TCP header, capped by TCP_MSS (65475: a full IPv6 packet).
  const Case cases[] = {
      {1500, v4(192, 0, 2, 2), v4(203, 0, 113, 10), 1460},
      {1500, v6(0, 2), v6(1, 0x10), 1440},
      {65535, v4(192, 0, 2, 2), v4(203, 0, 113, 10), 65475},
      {65535, v6(0, 2), v6(1, 0x10), 65475},
  };
  for (const Case& c : cases) {
    CAPTURE(c.mtu);
    CAPTURE(c.dst);
    Stack stack({.mtu = c.mtu});
    Listener listener;
    stack.listen_everywhere(listener);
    stack.inject(build_tcp_packet({.src = c.src,
                                   .src_port = 40001,
                                   .dst = c.dst,
                                   .dst_port = 443,
                                   .seq = 1000,
                                   .flags = kSyn,
                                   .options = syn_options(65495)}));
    const auto sent = stack.take_sent();
    REQUIRE(sent.size() == 1);
    const auto syn_ack = parse_tcp_packet(sent.front());
    REQUIRE(syn_ack.has_value());
    CHECK(syn_ack->flags == (kSyn | kAck));
    CHECK(syn_ack->mss == c.expected_mss);
    CHECK(syn_ack->window_scale == TCP_RCV_SCALE);
    CHECK(syn_ack->sack_permitted);
  }
}

TEST_CASE("sys_now_reads_the_injected_clock_until_reset") {
  std::uint32_t now = 0xFFFFFFF0u;  // near the wrap-around, which lwIP must tolerate
  tunsocks_lwip_set_clock(read_fake_clock, &now);
  CHECK(sys_now() == 0xFFFFFFF0u);
  now += 0x20;
  CHECK(sys_now() == 0x10u);

  tunsocks_lwip_set_clock(nullptr, nullptr);
  const std::uint32_t before = tunsocks_lwip_monotonic_ms();
  const std::uint32_t from_lwip = sys_now();
  const std::uint32_t after = tunsocks_lwip_monotonic_ms();
  CHECK(from_lwip - before <= after - before);  // unsigned: correct across a wrap too
}

TEST_CASE("fragmented_syn_is_reassembled_and_accepted") {
  // IP reassembly is on (lwipopts.h) and must work on 64-bit hosts for both families; the
  // second fragment arrives first to exercise reordering as well. The first fragment holds
  // the 20-byte TCP header and part of the options (lwIP, like most stacks, wants the
  // fixed transport header in the first fragment: RFC 1858's tiny-fragment rule).
  Stack stack({});
  Listener listener;
  stack.listen_everywhere(listener);
  const Flow flows[] = {
      {v4(192, 0, 2, 2), 40001, v4(203, 0, 113, 10), 443},
      {v6(0, 2), 40002, v6(1, 0x10), 8080},
  };
  for (const Flow& flow : flows) {
    CAPTURE(flow.dst);
    const auto fragments = fragment_in_two(build_tcp_packet({.src = flow.src,
                                                             .src_port = flow.src_port,
                                                             .dst = flow.dst,
                                                             .dst_port = flow.dst_port,
                                                             .seq = 1000,
                                                             .flags = kSyn,
                                                             .options = syn_options(1460)}),
                                           24);
    stack.inject(fragments[1]);
    CHECK(stack.take_sent().empty());
    stack.inject(fragments[0]);
    const auto sent = stack.take_sent();
    REQUIRE(sent.size() == 1);
    const auto syn_ack = parse_tcp_packet(sent.front());
    REQUIRE(syn_ack.has_value());
    CHECK(syn_ack->flags == (kSyn | kAck));
    CHECK(syn_ack->src == flow.dst);
    CHECK(syn_ack->src_port == flow.dst_port);
    CHECK(syn_ack->ack == 1001);
  }
}

// ---- payload blocks (port/payload_block.c, patch 0008) ----------------------------------

namespace {

// The TCP payload of an IPv4 packet lwIP sent.
Bytes ipv4_tcp_payload(const Bytes& packet) {
  const std::size_t ip_length = (packet[0] & 0x0F) * 4u;
  const std::size_t tcp_length = (packet[ip_length + 12] >> 4) * 4u;
  const std::size_t total = get16(packet, 2);
  return {packet.begin() + static_cast<long>(ip_length + tcp_length),
          packet.begin() + static_cast<long>(total)};
}

// An established flow from a client announcing MSS 1460, lwIP's pcb, and the next sequence
// numbers on both sides.
struct Established {
  tcp_pcb* pcb = nullptr;
  std::uint32_t client_next = 1001;
  std::uint32_t server_next = 0;
};

const Address kClient = v4(192, 0, 2, 2);
const Address kServer = v4(203, 0, 113, 10);

Established establish(Stack& stack, Listener& listener) {
  const auto syn_ack = stack.handshake(kClient, 40100, kServer, 80);
  REQUIRE(syn_ack.has_value());
  REQUIRE(listener.accepted.size() == 1);
  tcp_nagle_disable(listener.accepted.front());  // as tunsocks' flows: every write goes out
  return {.pcb = listener.accepted.front(), .server_next = syn_ack->seq + 1};
}

void acknowledge(Stack& stack, const Established& flow, std::uint32_t ack) {
  stack.inject(build_tcp_packet({.src = kClient,
                                 .src_port = 40100,
                                 .dst = kServer,
                                 .dst_port = 80,
                                 .seq = flow.client_next,
                                 .ack = ack,
                                 .flags = kAck}));
}

Bytes pattern(std::size_t length) {
  Bytes bytes(length);
  for (std::size_t i = 0; i < length; ++i)
    bytes[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return bytes;
}

// A new block holding `bytes`, queued on `pcb` by tcp_write without copying. The caller
// holds the block's first reference.
tunsocks_payload_block* write_from_new_block(tcp_pcb* pcb, const Bytes& bytes) {
  tunsocks_payload_block* block = tunsocks_payload_block_new(bytes.size() * 2);
  REQUIRE(block != nullptr);
  std::copy(bytes.begin(), bytes.end(), tunsocks_payload_block_data(block));
  tunsocks_lwip_set_write_block(block);
  const err_t written =
      tcp_write(pcb, tunsocks_payload_block_data(block), static_cast<u16_t>(bytes.size()), 0);
  tunsocks_lwip_set_write_block(nullptr);
  REQUIRE(written == ERR_OK);
  return block;
}

// A stack with the tunsocks listener and one established flow on it.
struct OneFlow {
  Stack stack{{}};
  Listener listener;
  Established flow;
  OneFlow() {
    stack.listen_everywhere(listener);
    flow = establish(stack, listener);
  }
};

}  // namespace

TEST_CASE("payload_block_is_sent_in_place_and_freed_by_the_last_acknowledgement") {
  OneFlow one;
  Stack& stack = one.stack;
  const Established& flow = one.flow;
  const std::uint64_t allocations_before = tunsocks_lwip_live_allocations();

  constexpr std::size_t kLength = 3000;  // 1460 + 1460 + 80: three segments
  const Bytes sent_bytes = pattern(kLength);
  tunsocks_payload_block* block = write_from_new_block(flow.pcb, sent_bytes);
  REQUIRE(tcp_output(flow.pcb) == ERR_OK);

  Bytes received;
  for (const Bytes& packet : stack.take_sent()) {
    const auto segment = parse_tcp_packet(packet);
    REQUIRE(segment.has_value());
    CHECK(segment->tcp_checksum_ok);
    const Bytes payload = ipv4_tcp_payload(packet);
    CHECK(payload.size() <= 1460);
    received.insert(received.end(), payload.begin(), payload.end());
  }
  CHECK(received == sent_bytes);
  // Ours plus one per segment's data pbuf.
  CHECK(tunsocks_payload_block_references(block) == 4);

  // The writer lets go at once; lwIP's segments keep the bytes until acknowledged.
  tunsocks_payload_block_release(block);
  acknowledge(stack, flow, flow.server_next + 1460);
  CHECK(tunsocks_payload_block_references(block) == 2);
  acknowledge(stack, flow, flow.server_next + kLength);
  CHECK(tunsocks_lwip_live_allocations() == allocations_before);
}

TEST_CASE("payload_block_outlives_its_writer_until_lwip_frees_the_connection") {
  OneFlow one;
  Stack& stack = one.stack;
  const Established& flow = one.flow;
  const std::uint64_t allocations_before = tunsocks_lwip_live_allocations();

  tunsocks_payload_block_release(write_from_new_block(flow.pcb, pattern(2000)));
  CHECK(tunsocks_lwip_live_allocations() > allocations_before);

  // Queued, never acknowledged: the connection's end frees the segments and the block.
  tcp_abort(flow.pcb);
  CHECK(tunsocks_lwip_live_allocations() == allocations_before - 1);  // the pcb too
  stack.take_sent();
}

TEST_CASE("data_outside_the_write_block_is_copied_not_referenced") {
  OneFlow one;
  Stack& stack = one.stack;
  const Established& flow = one.flow;

  tunsocks_payload_block* block = tunsocks_payload_block_new(4096);
  REQUIRE(block != nullptr);
  Bytes elsewhere = pattern(1000);
  const Bytes original = elsewhere;
  for (tunsocks_payload_block* write_block :
       {block, static_cast<tunsocks_payload_block*>(nullptr)}) {
    CAPTURE(write_block != nullptr);
    tunsocks_lwip_set_write_block(write_block);
    REQUIRE(tcp_write(flow.pcb, elsewhere.data(), 1000, 0) == ERR_OK);
    tunsocks_lwip_set_write_block(nullptr);
    std::fill(elsewhere.begin(), elsewhere.end(), std::uint8_t{0xEE});  // the caller reuses it
    REQUIRE(tcp_output(flow.pcb) == ERR_OK);
    const auto sent = stack.take_sent();
    REQUIRE(sent.size() == 1);
    CHECK(ipv4_tcp_payload(sent.front()) == original);
    elsewhere = original;
  }
  CHECK(tunsocks_payload_block_references(block) == 1);
  tunsocks_payload_block_release(block);
}
