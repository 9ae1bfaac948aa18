// One TCP flow from the application's SYN to its end: dial the upstream, run the SOCKS
// handshake, only then let lwIP answer the SYN, and relay both ways with backpressure.
//
// Refusal fidelity: the SYN is held while the upstream is asked; a refusal is answered with
// a TCP reset or an ICMP unreachable built from the SYN, so the application sees exactly
// what a direct connect would show (ECONNREFUSED, EHOSTUNREACH...) instead of a connection
// that opens and then closes.
//
// Lifetime (STYLE.md): the tunnel's flow table owns every flow. One teardown path, close(),
// detaches the lwIP pcb and closes both libuv handles; the flow tells its host it is done
// only when every handle is closed and every request has called back, and the host
// destroys it on a later loop turn.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <vector>

#include <uv.h>

#include "tunnel/client_handshake.h"
#include "tunnel/packet.h"
#include "tunnel/payload_block.h"

struct tcp_pcb;
struct pbuf;

namespace tunsocks::tunnel {

class TcpFlow;

// The SOCKS server that flows go to. Immutable and shared: every flow keeps the one it
// started with, so a profile switch sends new flows elsewhere and leaves open ones alone.
struct Upstream {
  sockaddr_storage address{};
  std::string display;  // for logs: socks5://host:port, password masked
  HandshakeOptions handshake;
};

struct FlowSettings {
  std::shared_ptr<const Upstream> upstream = std::make_shared<const Upstream>();
  std::uint32_t fwmark = 0;                   // SO_MARK on upstream sockets; 0 = none
  std::uint64_t connect_timeout_ms = 10'000;  // TCP connect + SOCKS handshake
  std::uint64_t idle_timeout_ms = 0;          // 0 = never
  std::uint64_t accept_timeout_ms = 10'000;   // SYN-ACK sent, application's ACK awaited
};

struct FlowCounters {
  std::uint64_t flows_open = 0;
  std::uint64_t flows_total = 0;
  std::uint64_t flows_refused = 0;  // upstream said no, or could not be reached
  std::uint64_t bytes_up = 0;       // application → upstream, acknowledged by the upstream write
  std::uint64_t bytes_down = 0;     // upstream → application, handed to lwIP
  // The other side of each direction, so that "nothing lost" is checkable from outside:
  // on a clean end, app_in == bytes_up and app_out == bytes_down for every flow.
  std::uint64_t app_in = 0;   // bytes lwIP delivered from the application
  std::uint64_t app_out = 0;  // bytes queued into the application's connection (tcp_write)
};

// What a flow needs from the tunnel that owns it.
class FlowHost {
 public:
  [[nodiscard]] virtual uv_loop_t* loop() = 0;
  [[nodiscard]] virtual const FlowSettings& flow_settings() const = 0;
  [[nodiscard]] virtual FlowCounters& flow_counters() = 0;
  // Feeds the flow's held SYN into lwIP, which answers it and later accepts.
  virtual void inject_syn(PacketView packet, const FlowKey& key) = 0;
  // Writes a packet built by the flow (a reset, an ICMP error) to the TUN.
  virtual void write_packet(PacketView packet) = 0;
  // A buffer for one upstream read; its bytes are consumed before the read callback returns,
  // so one buffer serves every flow and idle flows hold no read buffer at all...
  [[nodiscard]] virtual uv_buf_t read_buffer(std::size_t at_most) = 0;
  // ... unless the flow adopts it: `buffer` (from read_buffer) becomes the flow's payload
  // block, to be sent without a copy, and the next read_buffer() is a new one. Null when
  // `buffer` is not the host's.
  [[nodiscard]] virtual PayloadBlockRef adopt_read_buffer(const uv_buf_t& buffer) = 0;
  // Every handle closed and request completed: remove (and log) the flow on a later turn.
  virtual void flow_finished(TcpFlow& flow) = 0;

 protected:
  ~FlowHost() = default;
};

// Starts the TCP connection that every conversation with the upstream begins with (a
// flow's CONNECT, a UDP association's control connection): marked with the fwmark so the
// route rules keep it out of the TUN, Nagle off (handshakes are small writes). `handle`
// must be zeroed. `opened` is set once the handle is initialised; from then on the caller
// closes it, whatever else fails. The error is a short text for the log.
[[nodiscard]] std::expected<void, std::string> connect_upstream(
    uv_loop_t* loop, uv_tcp_t& handle, uv_connect_t& request, const FlowSettings& settings,
    const Upstream& upstream, uv_connect_cb on_connect, bool& opened);

enum class CloseReason : std::uint8_t {
  none,
  eof,               // both sides finished normally
  app_reset,         // the application reset (or lwIP gave up on it)
  upstream_reset,    // the upstream connection reset or failed mid-flow
  upstream_refused,  // the upstream (or its destination) refused: the SYN was refused
  upstream_unreachable,
  connect_timeout,   // TCP connect + handshake took longer than connect_timeout_ms
  handshake_failed,  // the upstream broke the protocol or rejected our credentials
  accept_timeout,    // the application never completed its handshake with lwIP
  idle_timeout,
  out_of_memory,  // lwIP could not allocate
  shutdown,       // the tunnel is stopping
  switched,       // a profile switch asked for open flows to be reset
};
[[nodiscard]] std::string_view describe(CloseReason reason);

enum class CloseKind : std::uint8_t { graceful, reset };

class TcpFlow {
 public:
  enum class Phase : std::uint8_t { dialing, handshaking, accepting, relaying, closing };

  // `name`: the destination is a fake-ip pool address standing for this name, which the
  // upstream is asked for instead (ATYP 3).
  TcpFlow(FlowHost& host, std::uint64_t id, const PacketInfo& syn, PacketView syn_packet,
          std::optional<std::string> name = std::nullopt);
  ~TcpFlow();
  TcpFlow(const TcpFlow&) = delete;
  TcpFlow& operator=(const TcpFlow&) = delete;

  // Starts dialing the upstream. The flow may finish (refused) before it returns.
  void start();
  // lwIP accepted the application's connection: the flow owns `pcb` from now on.
  // Returns false if the flow cannot take it; the caller then aborts the pcb.
  [[nodiscard]] bool attach(tcp_pcb* pcb);
  // The tunnel is stopping, or a switch resets open flows: reset both sides.
  void stop(CloseReason reason = CloseReason::shutdown);

  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] const FlowKey& key() const { return key_; }
  [[nodiscard]] const Upstream& upstream() const { return *upstream_server_; }
  [[nodiscard]] bool by_name() const { return by_name_; }
  [[nodiscard]] Phase phase() const { return phase_; }
  [[nodiscard]] CloseReason close_reason() const { return close_reason_; }
  [[nodiscard]] std::string reply_text() const { return handshake_.reply_text(); }
  [[nodiscard]] const std::string& detail() const { return detail_; }
  [[nodiscard]] std::uint64_t bytes_up() const { return bytes_up_; }
  [[nodiscard]] std::uint64_t bytes_down() const { return bytes_down_; }
  [[nodiscard]] std::uint64_t app_in() const { return app_in_; }
  [[nodiscard]] std::uint64_t app_out() const { return app_out_; }
  [[nodiscard]] std::uint64_t started_ms() const { return started_ms_; }

  // Event handlers, called by the trampolines in tcp_flow.cpp (public only for them).
  // Those called from lwIP return true when the pcb must be aborted by the trampoline.
  void on_connected(int status);
  void on_alloc(uv_buf_t* buffer);
  void on_read(ssize_t nread, const uv_buf_t* buffer);
  void on_write_done(pbuf* chain, int status);
  void on_shutdown_done(int status);
  void on_timer();
  void on_handle_closed();
  [[nodiscard]] bool on_recv(pbuf* chain);
  [[nodiscard]] bool on_sent(std::uint16_t length);
  void on_lwip_error(bool reset);
  void on_lwip_finished();

 private:
  void handshake_step();
  void refuse(CloseReason reason, Refusal refusal);
  void begin_relay();
  void pump_down();
  // Queues as much of [data, data + length) in lwIP as it takes; returns how much that was.
  // With `block` (holding the data), lwIP references the bytes instead of copying them.
  std::size_t write_to_app(const std::uint8_t* data, std::size_t length,
                           tunsocks_payload_block* block = nullptr);
  void update_reading();
  void stop_reading();
  void maybe_finish_gracefully(bool in_lwip);
  // The one teardown path. In lwIP context a reset cannot abort the pcb itself: it returns
  // true and the trampoline aborts.
  bool close(CloseReason reason, CloseKind kind, bool in_lwip = false);
  void release(int count = 1);
  void arm_timer(std::uint64_t ms);
  [[nodiscard]] int try_write_now(const uv_buf_t* buffers, unsigned count);
  static void skip_written(std::vector<uv_buf_t>& buffers, std::size_t count);
  void upstream_written(std::size_t length);

  FlowHost& host_;
  const std::uint64_t id_;
  const FlowKey key_;
  const bool by_name_;
  const std::shared_ptr<const Upstream> upstream_server_;
  PacketInfo syn_info_;
  PacketBytes syn_packet_;  // held until the upstream answers; freed after
  ClientHandshake handshake_;
  Phase phase_ = Phase::dialing;
  CloseReason close_reason_ = CloseReason::none;
  std::string detail_;

  uv_tcp_t upstream_{};
  uv_timer_t timer_{};
  uv_connect_t connect_request_{};
  uv_shutdown_t shutdown_request_{};
  tcp_pcb* pcb_ = nullptr;
  int outstanding_ = 0;  // open handles + requests in flight; the flow ends at 0

  std::vector<std::uint8_t> down_pending_;  // upstream bytes lwIP could not take yet
  bool reading_ = false;
  bool app_eof_ = false;            // FIN from the application
  bool upstream_shutdown_ = false;  // our FIN to the upstream was sent (all bytes written)
  bool upstream_eof_ = false;       // EOF from the upstream
  bool app_fin_sent_ = false;       // our FIN to the application was queued
  std::uint64_t writes_in_flight_ = 0;
  std::uint64_t bytes_up_ = 0;
  std::uint64_t bytes_down_ = 0;
  std::uint64_t app_in_ = 0;
  std::uint64_t app_out_ = 0;
  std::uint64_t started_ms_ = 0;
  std::uint64_t last_activity_ms_ = 0;
};

}  // namespace tunsocks::tunnel
