// DNS over TCP through the proxy (`--dns tcp`), for upstreams that carry no UDP: one SOCKS
// CONNECT to the resolver carries every relayed query, pipelined with RFC 1035 (4.2.2)
// two-byte length framing. The tunnel rewrites query IDs before they get here (DnsIdMap),
// so answers may come back in any order. The connection is opened on the first query,
// closed after a quiet minute or on any error, and opened again by the next query.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "tunnel/client_handshake.h"
#include "tunnel/packet.h"
#include "tunnel/tcp_flow.h"

namespace tunsocks::tunnel {

class DnsTcpUpstreamHost {
 public:
  [[nodiscard]] virtual uv_loop_t* loop() = 0;
  [[nodiscard]] virtual const FlowSettings& flow_settings() const = 0;
  // One answer, as it came (our ID in it).
  virtual void on_dns_tcp_answer(PacketView answer) = 0;
  // The connection is closed and every handle with it: the tunnel may stop.
  virtual void on_dns_tcp_closed() = 0;

 protected:
  ~DnsTcpUpstreamHost() = default;
};

class DnsTcpUpstream {
 public:
  DnsTcpUpstream(DnsTcpUpstreamHost& host, net::Endpoint resolver);
  ~DnsTcpUpstream();
  DnsTcpUpstream(const DnsTcpUpstream&) = delete;
  DnsTcpUpstream& operator=(const DnsTcpUpstream&) = delete;

  // Sends `query` (ID already ours), connecting first if needed. Returns false when it is
  // dropped: too much already waiting, or the tunnel is stopping.
  bool send(PacketView query);
  // Closes the connection for good (the tunnel is stopping).
  void stop();
  [[nodiscard]] bool idle() const { return state_ == State::idle; }
  [[nodiscard]] std::uint64_t connections() const { return connections_; }

  // Event handlers, called by the trampolines in the .cpp.
  [[nodiscard]] uv_buf_t read_buffer();
  void on_connected(int status);
  void on_read(ssize_t nread, const uv_buf_t* buffer);
  void on_write_done(int status);
  void on_timer();
  void on_handle_closed();

 private:
  enum class State : std::uint8_t { idle, connecting, handshaking, ready, closing };

  void connect();
  void flush();
  void write(std::vector<std::uint8_t> bytes);
  void close(const char* why);
  // Once closing and nothing is outstanding: back to idle, and reconnect for queries that
  // arrived meanwhile.
  void on_handle_closed_check();

  DnsTcpUpstreamHost& host_;
  const net::Endpoint resolver_;
  std::shared_ptr<const Upstream> upstream_server_;  // of the current connection
  State state_ = State::idle;
  bool stopped_ = false;
  uv_tcp_t upstream_{};
  uv_timer_t timer_{};
  uv_connect_t connect_request_{};
  std::optional<ClientHandshake> handshake_;
  std::vector<std::uint8_t> waiting_;   // framed queries not yet written
  std::vector<std::uint8_t> received_;  // bytes of answers not yet complete
  std::vector<std::uint8_t> read_buffer_;
  int outstanding_ = 0;  // open handles and requests in flight
  std::uint64_t last_activity_ms_ = 0;
  std::uint64_t connections_ = 0;
};

}  // namespace tunsocks::tunnel
