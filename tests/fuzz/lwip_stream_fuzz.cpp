// lwIP's TCP behind the tunnel's packet path, driven by a stream of packets in virtual
// time: the classifier decides what reaches lwIP (as Tunnel::process_packet does), the
// tunnel's glue (LwipStack) feeds it, lwIP's timers run on a clock this target advances,
// and a small application accepts connections, reads, acknowledges, writes back and closes
// or aborts them. So one input can walk a connection through the handshake, data, the
// out-of-order queue, window probes, retransmission, FIN/RST, TIME_WAIT and keepalive.
//
// Input: a 4-byte header, then records until the input ends.
//   header[0]  bits 0-1: the initial sequence number lwIP uses (kIsns)
//   header[1..3]  how the application treats connection n: header[1 + n % 3] (kEcho, ...)
//   record     [u16 length][length bytes: an IP packet][u16 milliseconds to advance]
//              Bit 15 of the length keeps the packet's checksums as written; without it the
//              IPv4 header and TCP checksums are recomputed first, so that mutated packets
//              get past lwIP's checksum checks. Big-endian; a short tail is used as it is.
//
// Checked: every packet lwIP writes to the TUN classifies, is exactly as long as it says,
// carries valid checksums and, if TCP, is not an IP fragment (segments fit the MTU); lwIP
// never acknowledges more than was written, delivers one FIN and no data after it, and
// every pcb the application holds is still one of lwIP's open connections; after each
// input everything is torn down and lwIP's pools and heap are back where they were
// (nothing leaked). lwIP is the harness's own build (third_party/lwip: tunsocks_lwip_fuzz,
// assertions on, the initial sequence number set from the header).
// TUNSOCKS_FUZZ_TRACE=1 prints every segment in and out.
#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fuzz_hooks.h>
#include <memory>
#include <netinet/in.h>  // before lwIP's headers, whose htons() macros would break it (uv.h)
#include <tunsocks_lwip_port.h>
#include <unordered_map>
#include <utility>
#include <vector>

#include <lwip/pbuf.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/stats.h>
#include <lwip/tcp.h>
#include <uv.h>

#include "invariants.h"
#include "tunnel/icmp_echo.h"
#include "tunnel/lwip_stack.h"
#include "tunnel/packet.h"

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using tunsocks::socks::fuzz::expect;

// Zero, and three that make lwIP's sequence numbers wrap within a few segments or windows.
constexpr std::array<std::uint32_t, 4> kIsns = {0x00000000u, 0x7FFFFF00u, 0xFFFFFC00u, 0xFFF80000u};
constexpr std::uint16_t kKeepChecksums = 0x8000;

// What the application does with connection n (header[1 + n % 3]).
constexpr std::uint8_t kEcho = 0x01;           // writes every byte it reads back
constexpr std::uint8_t kSlowReader = 0x02;     // acknowledges reads only on its poll timer
constexpr std::uint8_t kGreeting = 0x04;       // writes 3000 bytes on accept (several segments)
constexpr std::uint8_t kCloseOnFin = 0x08;     // closes at the peer's FIN (else some polls later)
constexpr std::uint8_t kAbortOnData = 0x10;    // aborts (RST) at the first data
constexpr std::uint8_t kShutdownFirst = 0x20;  // sends its FIN after the first data
constexpr std::uint8_t kKeepalive = 0x40;      // keepalive after 2 s idle, 3 probes 1 s apart
constexpr std::uint8_t kRefuse = 0x80;         // refuses the connection (the glue aborts it)

constexpr std::size_t kBacklogLimit = 64 * 1024;  // echo bytes waiting for send buffer room
constexpr std::uint32_t kTimerStepMs = TCP_TMR_INTERVAL;

std::uint16_t load16(const std::uint8_t* at) {
  return static_cast<std::uint16_t>(at[0] << 8 | at[1]);
}

void store16(std::vector<std::uint8_t>& bytes, std::size_t at, std::uint16_t value) {
  bytes[at] = static_cast<std::uint8_t>(value >> 8);
  bytes[at + 1] = static_cast<std::uint8_t>(value);
}

net::IpAddress address_at(const std::vector<std::uint8_t>& bytes, std::size_t at, bool v4) {
  if (v4) {
    std::array<std::uint8_t, 4> raw{};
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), 4, raw.begin());
    return net::IpAddress::v4(raw);
  }
  std::array<std::uint8_t, 16> raw{};
  std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), 16, raw.begin());
  return net::IpAddress::v6(raw);
}

// Recomputes the IPv4 header checksum and, for an unfragmented TCP segment right after the
// fixed header, the TCP checksum over the length the IP header claims (cut to the bytes
// present). Anything it does not understand is left as it is.
void fix_checksums(std::vector<std::uint8_t>& packet) {
  if (packet.empty()) return;
  const int version = packet[0] >> 4;
  std::size_t header = 0;
  std::size_t total = 0;
  std::uint8_t protocol = 0;
  bool whole = true;
  if (version == 4) {
    if (packet.size() < 20) return;
    header = std::size_t{packet[0] & 0x0Fu} * 4;
    if (header < 20 || header > packet.size()) return;
    store16(packet, 10, 0);
    store16(packet, 10, internet_checksum(PacketView(packet).first(header)));
    total = std::min<std::size_t>(load16(&packet[2]), packet.size());
    protocol = packet[9];
    whole = (load16(&packet[6]) & 0x3FFF) == 0;  // neither MF nor an offset
  } else if (version == 6) {
    header = 40;
    if (packet.size() < header) return;
    total = std::min<std::size_t>(header + load16(&packet[4]), packet.size());
    protocol = packet[6];
  } else {
    return;
  }
  if (protocol != kProtoTcp || !whole || total < header + 20) return;
  const std::size_t length = total - header;
  store16(packet, header + 16, 0);
  const std::uint32_t pseudo = pseudo_header_sum(
      address_at(packet, version == 4 ? 12 : 8, version == 4),
      address_at(packet, version == 4 ? 16 : 24, version == 4), kProtoTcp, length);
  store16(packet, header + 16,
          internet_checksum(PacketView(packet).subspan(header, length), pseudo));
}

// TUNSOCKS_FUZZ_TRACE=1 prints every TCP segment in and out, to check what a seed does.
const bool g_trace = std::getenv("TUNSOCKS_FUZZ_TRACE") != nullptr;

void trace(const char* direction, PacketView packet, std::uint64_t now) {
  const auto info = classify(packet);
  if (!info) {
    std::fprintf(stderr, "%8llu %s unclassified %zu bytes\n", static_cast<unsigned long long>(now),
                 direction, packet.size());
    return;
  }
  const PacketView tcp = packet.subspan(info->ip_header_length);
  if (!info->is_tcp() || tcp.size() < 20) {
    std::fprintf(stderr, "%8llu %s v%d protocol %d, %zu bytes%s\n",
                 static_cast<unsigned long long>(now), direction, info->version, info->protocol,
                 packet.size(), info->fragment ? " (fragment)" : "");
    return;
  }
  const std::uint32_t ack = std::uint32_t{tcp[8]} << 24 | std::uint32_t{tcp[9]} << 16 |
                            std::uint32_t{tcp[10]} << 8 | tcp[11];
  const std::size_t offset = std::size_t{tcp[12]} / 16 * 4;
  const std::size_t data = tcp.size() > offset ? tcp.size() - offset : 0;
  std::fprintf(stderr, "%8llu %s v%d %u>%u flags %02x seq %u ack %u win %u len %zu\n",
               static_cast<unsigned long long>(now), direction, info->version,
               info->flow.source.port, info->flow.destination.port, info->tcp_flags, info->tcp_seq,
               ack, load16(&tcp[14]), data);
}

// What lwIP writes to the TUN must be a packet tunsocks itself would accept.
void check_output(PacketView packet) {
  const auto info = classify(packet);
  expect(info.has_value());
  expect(info->total_length == packet.size());
  expect(info->ip_header_length <= info->total_length);
  if (info->version == 4) expect(internet_checksum(packet.first(20)) == 0);
  if (info->protocol == kProtoIcmp || info->protocol == kProtoIcmpv6)
    return;  // reassembly timeouts
  expect(info->protocol == kProtoTcp && info->has_ports && !info->fragment);
  const PacketView tcp = packet.subspan(info->ip_header_length);
  expect(tcp.size() >= 20);
  expect(internet_checksum(tcp, pseudo_header_sum(info->flow.source.ip, info->flow.destination.ip,
                                                  kProtoTcp, tcp.size())) == 0);
}

class App;

// One accepted connection, as a TcpFlow would hold it but with no upstream: its behaviour
// bits decide what it does with what arrives.
struct Connection {
  App* app = nullptr;
  tcp_pcb* pcb = nullptr;
  FlowKey key;
  std::uint8_t behaviour = 0;
  std::vector<std::uint8_t> backlog;  // read, to be echoed when the send buffer has room
  std::size_t unacknowledged = 0;     // read but not yet passed to tcp_recved (slow reader)
  std::uint64_t received = 0;
  std::uint64_t written = 0;
  std::uint64_t acked = 0;
  bool peer_finished = false;
  bool shut_down = false;
  int polls_after_fin = 0;
};

class App final : public LwipStack::Delegate {
 public:
  explicit App(uv_loop_t* loop) : stack_(loop, *this, {.mtu = 1500}), now_(uv_now(loop)) {
    // The tunnel's glue points lwIP at the loop's clock, and lwIP armed its timers by it;
    // this target owns time from here on, starting where the loop's clock stood.
    tunsocks_lwip_set_clock(&App::clock, this);
  }

  void begin(const std::uint8_t* header) {
    start_ = now_;
    tunsocks_lwip_fuzz_set_isn(kIsns[header[0] & 3]);
    std::copy_n(header + 1, behaviours_.size(), behaviours_.begin());
    accepted_ = 0;
  }

  // As Tunnel::process_packet: only TCP goes to lwIP, a new flow's SYN through input_syn.
  void packet(PacketView packet) {
    if (g_trace) trace("in ", packet, now_ - start_);
    const auto info = classify(packet);
    if (!info) return;
    if (info->protocol == kProtoIcmp || info->protocol == kProtoIcmpv6) {
      if (auto reply = build_echo_reply(*info, packet)) check_output(*reply);
      return;
    }
    if (info->protocol != kProtoTcp) return;
    packet = packet.first(info->total_length);
    if (!info->has_ports) return stack_.input(packet);
    if (info->is_tcp_syn() && !flows_.contains(info->flow)) {
      flows_.emplace(info->flow, nullptr);
      return stack_.input_syn(packet, info->flow);
    }
    stack_.input(packet);
  }

  // Every pcb the application holds is one lwIP still has among its open connections.
  void check_connections() const {
    for (const auto& owned : connections_) {
      if (owned->pcb == nullptr) continue;
      bool found = false;
      for (const tcp_pcb* pcb = tcp_active_pcbs; pcb != nullptr && !found; pcb = pcb->next) {
        found = pcb == owned->pcb;
      }
      expect(found && owned->pcb->state != TIME_WAIT);
    }
  }

  // Moves the clock on in steps of lwIP's TCP timer, running the timers at each, so that a
  // long pause ages connections tick by tick as real time would.
  void advance(std::uint32_t ms) {
    stack_.check_timeouts();
    while (ms > 0) {
      const std::uint32_t step = std::min(ms, kTimerStepMs);
      now_ += step;
      ms -= step;
      stack_.check_timeouts();
    }
  }

  // Ends every connection and lets every lwIP timer run out, so the next input starts from
  // the same state: no pcb, no fragment held, the TCP timer stopped, the other timers due
  // one interval from now. Then nothing may be left allocated.
  void end() {
    if (g_trace) {
      std::fprintf(stderr,
                   "ipfrag recv %d drop %d err %d; ip recv %d drop %d; tcp recv %d drop %d chkerr "
                   "%d proterr %d\n",
                   +lwip_stats.ip_frag.recv, +lwip_stats.ip_frag.drop, +lwip_stats.ip_frag.err,
                   +lwip_stats.ip.recv, +lwip_stats.ip.drop, +lwip_stats.tcp.recv,
                   +lwip_stats.tcp.drop, +lwip_stats.tcp.chkerr, +lwip_stats.tcp.proterr);
    }
    for (auto& [key, connection] : flows_) {
      if (connection != nullptr && connection->pcb != nullptr) {
        tcp_pcb* pcb = std::exchange(connection->pcb, nullptr);
        detach(pcb);
        tcp_abort(pcb);
      }
    }
    flows_.clear();
    connections_.clear();
    while (tcp_active_pcbs != nullptr)
      tcp_abort(tcp_active_pcbs);
    while (tcp_tw_pcbs != nullptr)
      tcp_abort(tcp_tw_pcbs);
    // Longer than IP reassembly keeps a fragment (*_REASS_MAXAGE ticks of one second).
    for (int i = 0; i < std::max(IP_REASS_MAXAGE, IPV6_REASS_MAXAGE) + 5; ++i) {
      now_ += 1000;
      stack_.check_timeouts();
    }
    // One jump beyond every interval: each cyclic timer is then re-armed one interval from
    // now, not in its old phase.
    now_ += 5000;
    stack_.check_timeouts();
    // tcp_tmr runs the slow timer every second call; leave it just after a slow run.
    for (const std::uint32_t before = tcp_ticks; tcp_ticks == before;)
      tcp_tmr();
    expect(tcp_active_pcbs == nullptr && tcp_tw_pcbs == nullptr);
    check_no_leak();
  }

  void on_lwip_output(PacketPieces pieces) override {
    PacketBytes packet;
    for (auto piece : pieces)
      packet.insert(packet.end(), piece.begin(), piece.end());
    if (g_trace) trace("out", packet, now_ - start_);
    check_output(packet);
  }

  bool on_lwip_accept(tcp_pcb* pcb, const FlowKey& key) override {
    const std::uint8_t behaviour = behaviours_[accepted_++ % behaviours_.size()];
    if ((behaviour & kRefuse) != 0) return false;
    auto owned = std::make_unique<Connection>();
    Connection& c = *owned;
    c.app = this;
    c.pcb = pcb;
    c.key = key;
    c.behaviour = behaviour;
    connections_.push_back(std::move(owned));
    flows_[key] = &c;
    tcp_arg(pcb, &c);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_poll(pcb, on_poll, 2);
    tcp_nagle_disable(pcb);  // as TcpFlow does
    if ((behaviour & kKeepalive) != 0) {
      ip_set_option(pcb, SOF_KEEPALIVE);
      pcb->keep_idle = 2000;
      pcb->keep_intvl = 1000;
      pcb->keep_cnt = 3;
    }
    if ((behaviour & kGreeting) != 0) {
      c.backlog.assign(3000, 'g');
      flush(c);
    }
    return true;
  }

  // Taken once, after lwIP is initialised: what an idle stack holds (the listener).
  void baseline() {
    for (std::size_t i = 0; i < MEMP_MAX; ++i)
      pools_[i] = lwip_stats.memp[i]->used;
    heap_ = lwip_stats.mem.used;
  }

 private:
  static std::uint32_t clock(void* self) {
    return static_cast<std::uint32_t>(static_cast<App*>(self)->now_);
  }

  void check_no_leak() const {
    if (g_trace) {
      for (std::size_t i = 0; i < MEMP_MAX; ++i) {
        if (lwip_stats.memp[i]->used != pools_[i]) {
          std::fprintf(stderr, "leak: pool %s holds %zu (was %zu)\n", lwip_stats.memp[i]->name,
                       std::size_t{lwip_stats.memp[i]->used}, pools_[i]);
        }
      }
      if (lwip_stats.mem.used != heap_) {
        std::fprintf(stderr, "leak: heap %zu bytes (was %zu)\n", std::size_t{lwip_stats.mem.used},
                     heap_);
      }
    }
    for (std::size_t i = 0; i < MEMP_MAX; ++i)
      expect(lwip_stats.memp[i]->used == pools_[i]);
    expect(lwip_stats.mem.used == heap_);
  }

  static void detach(tcp_pcb* pcb) {
    tcp_arg(pcb, nullptr);
    tcp_recv(pcb, nullptr);
    tcp_sent(pcb, nullptr);
    tcp_err(pcb, nullptr);
    tcp_poll(pcb, nullptr, 0);
  }

  // The connection lets go of its pcb (closed, aborted, or gone with an error) and the
  // flow ends, as the tunnel's flow would: a later SYN of the same addresses and ports is
  // a new flow.
  static void forget(Connection& c) {
    if (c.pcb != nullptr) detach(c.pcb);
    c.pcb = nullptr;
    c.backlog.clear();
    auto& flows = c.app->flows_;
    if (auto found = flows.find(c.key); found != flows.end() && found->second == &c) {
      flows.erase(found);
    }
  }

  // Writes as much of the backlog as the send buffer takes.
  static void flush(Connection& c) {
    if (c.pcb == nullptr || c.shut_down || c.backlog.empty()) return;
    const std::size_t room = tcp_sndbuf(c.pcb);
    const auto n = static_cast<u16_t>(std::min<std::size_t>({room, c.backlog.size(), 0xFFFF}));
    if (n == 0) return;
    if (tcp_write(c.pcb, c.backlog.data(), n, TCP_WRITE_FLAG_COPY) != ERR_OK) return;
    c.written += n;
    c.backlog.erase(c.backlog.begin(), c.backlog.begin() + n);
    tcp_output(c.pcb);
  }

  static void close(Connection& c) {
    tcp_pcb* pcb = c.pcb;
    forget(c);
    if (tcp_close(pcb) != ERR_OK) tcp_abort(pcb);  // lwIP keeps a closed pcb until it is done
  }

  static err_t on_recv(void* arg, tcp_pcb* pcb, pbuf* chain, err_t error) {
    auto* c = static_cast<Connection*>(arg);
    if (c == nullptr) {
      if (chain != nullptr) pbuf_free(chain);
      return ERR_OK;
    }
    expect(pcb == c->pcb && error == ERR_OK);
    if (chain == nullptr) {
      expect(!c->peer_finished);  // one FIN is delivered once
      c->peer_finished = true;
      // After our own FIN the pcb is now in TIME_WAIT, which lwIP frees without a word
      // when it ends: an application must let go of it at once.
      if ((c->behaviour & kCloseOnFin) != 0 || c->shut_down) close(*c);
      return ERR_OK;
    }
    expect(!c->peer_finished);  // no data after the FIN
    const std::size_t length = chain->tot_len;
    c->received += length;
    if ((c->behaviour & kAbortOnData) != 0) {
      pbuf_free(chain);
      forget(*c);
      tcp_abort(pcb);
      return ERR_ABRT;
    }
    if ((c->behaviour & kEcho) != 0 && c->backlog.size() + length <= kBacklogLimit) {
      const std::size_t at = c->backlog.size();
      c->backlog.resize(at + length);
      expect(pbuf_copy_partial(chain, c->backlog.data() + at, static_cast<u16_t>(length), 0) ==
             length);
    }
    pbuf_free(chain);
    if ((c->behaviour & kSlowReader) != 0) {
      c->unacknowledged += length;
    } else {
      tcp_recved(pcb, static_cast<u16_t>(length));
    }
    flush(*c);
    if ((c->behaviour & kShutdownFirst) != 0 && !c->shut_down && c->pcb != nullptr) {
      c->shut_down = true;
      c->backlog.clear();
      tcp_shutdown(pcb, 0, 1);
    }
    return ERR_OK;
  }

  static err_t on_sent(void* arg, tcp_pcb* pcb, u16_t length) {
    auto* c = static_cast<Connection*>(arg);
    if (c == nullptr) return ERR_OK;
    expect(pcb == c->pcb);
    c->acked += length;
    expect(c->acked <= c->written);  // lwIP never acknowledges more than was written
    flush(*c);
    return ERR_OK;
  }

  // The slow reader acknowledges here; a connection whose peer finished closes some polls
  // later, so the peer's half-closed direction lives on meanwhile.
  static err_t on_poll(void* arg, tcp_pcb* pcb) {
    auto* c = static_cast<Connection*>(arg);
    if (c == nullptr) return ERR_OK;
    expect(pcb == c->pcb);
    while (c->unacknowledged > 0) {
      const auto n = static_cast<u16_t>(std::min<std::size_t>(c->unacknowledged, 0xFFFF));
      tcp_recved(pcb, n);
      c->unacknowledged -= n;
    }
    flush(*c);
    if (c->peer_finished && ++c->polls_after_fin >= 3) close(*c);
    return ERR_OK;
  }

  static void on_err(void* arg, err_t) {
    auto* c = static_cast<Connection*>(arg);
    if (c == nullptr) return;
    c->pcb = nullptr;  // lwIP has freed it
    forget(*c);
  }

  LwipStack stack_;
  std::uint64_t now_ = 0;
  std::uint64_t start_ = 0;  // when the current input began (for the trace)
  std::array<std::uint8_t, 3> behaviours_{};
  std::size_t accepted_ = 0;
  // Flows as the tunnel knows them: a SYN of an unknown flow opens one (nullptr until lwIP
  // completes the handshake).
  std::unordered_map<FlowKey, Connection*, FlowKeyHash> flows_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::array<std::size_t, MEMP_MAX> pools_{};
  std::size_t heap_ = 0;
};

App& app() {
  static uv_loop_t* loop = [] {
    auto* created = new uv_loop_t;
    uv_loop_init(created);
    return created;
  }();
  // Never destroyed: lwIP's state is global and lives as long as the process.
  static App* instance = [] {
    auto* created = new App(loop);
    created->baseline();
    return created;
  }();
  return *instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kHeader = 4;
  if (size < kHeader) return 0;
  App& a = app();
  a.begin(data);
  std::size_t offset = kHeader;
  std::vector<std::uint8_t> packet;
  while (offset + 2 <= size) {
    const std::uint16_t field = load16(data + offset);
    offset += 2;
    const std::size_t length = std::min<std::size_t>(field & 0x7FFF, size - offset);
    packet.assign(data + offset, data + offset + length);
    offset += length;
    if ((field & kKeepChecksums) == 0) fix_checksums(packet);
    a.packet(packet);
    std::uint32_t ms = 0;
    if (offset + 2 <= size) {
      ms = load16(data + offset);
      offset += 2;
    }
    a.advance(ms);
    a.check_connections();
  }
  a.end();
  return 0;
}
