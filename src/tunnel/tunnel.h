// The tunnel: reads IP packets from the TUN device, sorts them (DESIGN.md, "Data path"),
// holds each new TCP connection's SYN while its flow asks the upstream, feeds everything
// else to lwIP, and writes lwIP's packets back to the TUN. It owns the flow table and
// every flow in it; flows are destroyed here, one loop turn after they report finished.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include "tunnel/dns.h"
#include "tunnel/dns_id_map.h"
#include "tunnel/dns_tcp_session.h"
#include "tunnel/dns_tcp_upstream.h"
#include "tunnel/fake_ip_pool.h"
#include "tunnel/lwip_stack.h"
#include "tunnel/memory_guard.h"
#include "tunnel/packet.h"
#include "tunnel/tcp_flow.h"
#include "tunnel/tun_io.h"
#include "tunnel/udp_packet.h"
#include "tunnel/udp_session.h"

namespace tunsocks::tunnel {

// DNS to port 53 (DESIGN.md, "DNS and names"). off: port 53 is UDP like any other;
// forward: queries go through UDP ASSOCIATE to whichever resolver the application asked,
// counted; fake_ip: A and AAAA questions are answered here from the fake-ip pool, and
// flows to pool addresses go upstream by name; other questions are forwarded.
enum class DnsMode : std::uint8_t { off, forward, fake_ip, tcp };

struct TunnelSettings {
  FlowSettings flow;
  UdpSettings udp;
  DnsMode dns = DnsMode::off;
  bool answer_ping = false;
  bool udp_blocked = false;  // drop (and count) UDP that is not DNS instead of relaying it
  // Where forwarded DNS queries go (any family) instead of the resolver the application
  // asked; replies still come from the address it asked.
  std::optional<net::Endpoint> dns_server;  // ICMP echo answered here (see icmp_echo.h)
  std::uint32_t fake_ip_ttl = 30;  // seconds; short, so that recycled entries are not cached
  std::uint32_t fake_ip_capacity = FakeIpPool::kMaxCapacity;
  TunFraming framing;                   // how the TUN device was opened, its MTU included
  std::size_t max_flows = 0;            // 0: no limit but memory and file descriptors
  std::size_t packets_per_wakeup = 64;  // fairness between the TUN and the upstreams
};

struct TunnelCounters {
  std::uint64_t packets_in = 0;   // read from the TUN
  std::uint64_t packets_out = 0;  // written to the TUN (by lwIP or as refusals)
  std::array<std::uint64_t, static_cast<std::size_t>(DropReason::count_)> malformed{};
  std::uint64_t icmp_dropped = 0;
  std::uint64_t pings_answered = 0;
  std::uint64_t other_dropped = 0;   // neither TCP, UDP nor ICMP
  std::uint64_t duplicate_syns = 0;  // a SYN for a flow still asking its upstream
  std::uint64_t flow_limit_refusals = 0;
  std::uint64_t tun_read_errors = 0;
  std::uint64_t tun_write_errors = 0;
  std::uint64_t dns_answered = 0;         // fake-ip answers written
  std::uint64_t dns_unmatched = 0;        // replies to relayed queries with an unknown or late ID
  std::uint64_t dns_forwarded = 0;        // queries relayed upstream (forward, or not A/AAAA)
  std::uint64_t dns_pool_full = 0;        // answered SERVFAIL: every pool entry held by a flow
  std::uint64_t dns_tcp_connections = 0;  // DNS over TCP answered here (fake-ip)
  std::uint64_t fake_ip_flows = 0;        // TCP flows and UDP destinations sent upstream by name
  std::uint64_t fake_ip_unknown = 0;      // flows to pool addresses that stand for no name
};

// UDP associations are keyed by the application's socket alone (source address and port):
// one socket talking to many destinations is one association.
struct EndpointHash {
  std::size_t operator()(const net::Endpoint& endpoint) const noexcept;
};

class Tunnel final : public FlowHost,
                     public UdpHost,
                     public DnsTcpHost,
                     public DnsTcpUpstreamHost,
                     public LwipStack::Delegate {
 public:
  Tunnel(uv_loop_t* loop, int tun_fd, TunnelSettings settings);
  ~Tunnel();
  Tunnel(const Tunnel&) = delete;
  Tunnel& operator=(const Tunnel&) = delete;

  // Starts reading packets from the TUN. Returns a libuv error code (0 on success).
  [[nodiscard]] int start();
  // Stops reading, resets every open flow and closes every handle; `done` runs when all is
  // closed (the loop can then end).
  void stop(std::function<void()> done);

  // A profile switch or reload. New flows, associations and relayed DNS queries use
  // `next` at once; open flows and associations keep the upstream they started with and
  // finish normally, unless `reset_open` (then they are reset). The fake-ip pool and its
  // mappings stay (a flow to an address handed out earlier still goes by its name), as do
  // the MTU and the pool size, which only a restart changes.
  void reconfigure(TunnelSettings next, bool reset_open);
  // New flows and associations use `next`, which names the running upstream with more
  // learnt about it (a probe's answer); open ones keep theirs. Its spares end.
  void update_upstream(std::shared_ptr<const Upstream> next);

  // Counters as one JSON object (for SIGUSR1 and the control socket).
  [[nodiscard]] std::string counters_json() const;
  // Open TCP flows and UDP associations as a JSON array: addresses, upstream, bytes, age.
  [[nodiscard]] std::string flows_json() const;
  [[nodiscard]] const FlowCounters& flow_counts() const { return flow_counters_; }
  [[nodiscard]] const TunnelCounters& counters() const { return counters_; }
  [[nodiscard]] std::size_t flow_count() const { return flows_.size(); }
  [[nodiscard]] const UdpCounters& udp_counts() const { return udp_counters_; }
  [[nodiscard]] std::size_t udp_session_count() const { return udp_sessions_.size(); }

  // Processes one packet as if it had been read from the TUN (also used by tests).
  void process_packet(PacketView packet, bool checksum_trusted = false);

  // FlowHost
  uv_loop_t* loop() override { return loop_; }
  const FlowSettings& flow_settings() const override { return settings_.flow; }
  FlowCounters& flow_counters() override { return flow_counters_; }
  void inject_syn(PacketView packet, const FlowKey& key) override;
  void write_packet(PacketView packet) override;
  uv_buf_t read_buffer(std::size_t at_most) override;
  PayloadBlockRef adopt_read_buffer(const uv_buf_t& buffer) override;
  void flow_finished(TcpFlow& flow) override;

  // UdpHost (loop, flow_settings and read_buffer are shared with FlowHost)
  const UdpSettings& udp_settings() const override { return settings_.udp; }
  UdpCounters& udp_counters() override { return udp_counters_; }
  void write_udp(const net::Endpoint& source, const net::Endpoint& destination,
                 PacketView payload) override;
  void udp_refused(UdpSession& session) override;
  bool udp_upstream_full(UdpSession& session) override;
  void udp_active(UdpSession& session) override;
  void udp_finished(UdpSession& session) override;

  // DnsTcpHost
  PacketBytes answer_dns_message(PacketView message) override;
  void dns_tcp_finished(DnsTcpSession& session) override;

  // DnsTcpUpstreamHost (loop and flow_settings shared with FlowHost)
  void on_dns_tcp_answer(PacketView answer) override;
  void on_dns_tcp_closed() override;

  // LwipStack::Delegate
  void on_lwip_output(PacketPieces packet) override;
  bool on_lwip_accept(tcp_pcb* pcb, const FlowKey& key) override;

  // Trampolines' entry points.
  void on_readable();
  void on_reap();
  // Sets up spares until UdpSettings::spares are open (below the limits, not while the
  // upstream recently failed one, see udp_spares_paused_until_ms_).
  void top_up_spares();

 private:
  void handle_tcp(const PacketInfo& info, PacketView packet, bool checksum_trusted);
  void handle_udp(const PacketInfo& info, PacketView packet);
  void relay_udp(const UdpDatagramView& datagram);
  // The association of the application socket `key`, opened if needed; nullptr when the
  // association limit is reached (the drop is counted).
  UdpSession* session_for(const net::Endpoint& key);
  // Opens the association for `key` (no other may be in the table for it).
  UdpSession* open_session(const net::Endpoint& key, int attempt, std::uint64_t delay_ms = 0);
  // Closes the association the applications are least likely to miss (never `keep`, never
  // the shared DNS ones, never one that is not idle); false when there is none.
  bool make_udp_room(const UdpSession* keep);
  // max_udp_sessions, or the upstream's limit where it is known.
  [[nodiscard]] std::size_t udp_limit() const;
  // A spare of the current upstream for `key`, taken into the table; nullptr when none.
  UdpSession* take_spare(const net::Endpoint& key);
  // Ends the spares: they were set up for an upstream no longer in force as it was.
  void stop_spares();
  // top_up_spares() shortly (kUdpSpareDelayMs), unless already due.
  void schedule_spares();
  // At the limit: the least recently active answered association of the current upstream,
  // moved to `key` (UdpSession::recycle); nullptr when there is none.
  UdpSession* recycle_session(const net::Endpoint& key);
  void forward_dns(const UdpDatagramView& datagram);
  void deliver_dns_reply(PacketView reply);
  bool answer_dns(const UdpDatagramView& datagram);
  void handle_dns_tcp(const PacketInfo& info, PacketView packet, bool checksum_trusted);
  [[nodiscard]] PacketBytes fake_ip_answer(const DnsQuery& query, PacketView message);
  // A destination in the fake-ip pool that stands for a name (see goes_by_name in .cpp).
  [[nodiscard]] bool goes_by_name(const net::IpAddress& destination) const;
  void count_write(int error);
  void log_flow_end(const TcpFlow& flow) const;
  void log_udp_end(const UdpSession& session) const;
  void maybe_stopped();

  uv_loop_t* loop_;
  TunIo tun_;
  TunnelSettings settings_;
  LwipStack stack_;
  uv_poll_t poll_{};
  uv_idle_t reaper_{};
  uv_timer_t spare_timer_{};
  std::unordered_map<FlowKey, std::unique_ptr<TcpFlow>, FlowKeyHash> flows_;
  std::vector<FlowKey> finished_;
  std::unordered_map<net::Endpoint, std::unique_ptr<UdpSession>, EndpointHash> udp_sessions_;
  std::vector<std::unique_ptr<UdpSession>> udp_closing_;  // replaced while still closing
  // Associations for no socket yet, oldest first; in udp_lru_ too, out of the table.
  std::vector<std::unique_ptr<UdpSession>> udp_spares_;
  // A spare that failed (unreachable, refused, closed by the upstream) pauses new ones for
  // a while: a failing upstream then costs one attempt per socket, as without spares.
  std::uint64_t udp_spares_paused_until_ms_ = 0;
  std::vector<const UdpSession*> udp_finished_;
  // Every association in the table or closing, least recently active first (make_udp_room).
  std::list<UdpSession*> udp_lru_;
  UdpReassembler reassembler_;
  FakeIpPool fake_ips_;
  DnsIdMap dns_ids_;
  std::unique_ptr<DnsTcpUpstream> dns_over_tcp_;
  // Connections of earlier profiles, closing; destroyed once idle.
  std::vector<std::unique_ptr<DnsTcpUpstream>> dns_over_tcp_retired_;
  std::unordered_map<FlowKey, std::unique_ptr<DnsTcpSession>, FlowKeyHash> dns_tcp_;
  std::vector<FlowKey> dns_tcp_finished_;
  UdpCounters udp_counters_;
  std::uint64_t next_udp_id_ = 1;
  std::uint16_t next_ip_id_ = 1;
  std::uint64_t udp_refused_until_ms_ = 0;
  // How many associations the upstream took before it said it was full; open ones beyond
  // it make room first instead of each costing a refused set-up. Forgotten after a while
  // (the upstream's other clients come and go) and on a profile switch.
  std::size_t udp_upstream_cap_ = 0;  // 0: not known
  std::uint64_t udp_upstream_cap_until_ms_ = 0;
  // Made on the first upstream read (its pages cost memory only once a read used them);
  // null again after a flow adopted it.
  PayloadBlockRef read_block_;
  FlowCounters flow_counters_;
  TunnelCounters counters_;
  MemoryGuard memory_guard_;  // new flows are refused near the cgroup's memory limit
  std::uint64_t next_flow_id_ = 1;
  bool socks4_udp_warned_ = false;
  bool stopping_ = false;
  int handles_open_ = 0;
  std::function<void()> stopped_;
};

}  // namespace tunsocks::tunnel
