// DNS over TCP answered locally in fake-ip mode (DESIGN.md, "DNS and names": queries are
// caught wherever they are addressed, UDP and TCP). A resolver falls back to TCP for a
// truncated answer, and some are configured to use TCP only; without this their queries
// would become CONNECTs to a resolver address that may exist only on this machine.
//
// lwIP terminates the connection (the SYN is injected at once: there is no upstream to
// ask); each length-prefixed message (RFC 1035 4.2.2) is answered by the host. Lifetime as
// for every flow: the tunnel owns the session, close() is the one teardown path, the host
// destroys it on a later loop turn once its timer handle is closed.
#pragma once

#include <cstdint>
#include <vector>

#include <uv.h>

#include "tunnel/packet.h"

struct tcp_pcb;
struct pbuf;

namespace tunsocks::tunnel {

class DnsTcpSession;

class DnsTcpHost {
 public:
  [[nodiscard]] virtual uv_loop_t* loop() = 0;
  // The response to one DNS message; empty when it cannot be answered (the connection
  // then closes, as a resolver would on garbage).
  [[nodiscard]] virtual PacketBytes answer_dns_message(PacketView message) = 0;
  // The pcb is detached and the timer closed: destroy the session on a later turn.
  virtual void dns_tcp_finished(DnsTcpSession& session) = 0;

 protected:
  ~DnsTcpHost() = default;
};

class DnsTcpSession {
 public:
  DnsTcpSession(DnsTcpHost& host, const FlowKey& key);
  ~DnsTcpSession();
  DnsTcpSession(const DnsTcpSession&) = delete;
  DnsTcpSession& operator=(const DnsTcpSession&) = delete;

  // Starts the idle timer (a client that never completes the handshake or never asks
  // must not hold the session).
  void start();
  // lwIP accepted the connection: the session owns `pcb` from now on.
  [[nodiscard]] bool attach(tcp_pcb* pcb);
  // The tunnel is stopping: reset.
  void stop();

  [[nodiscard]] const FlowKey& key() const { return key_; }
  [[nodiscard]] std::uint64_t answered() const { return answered_; }

  // Trampolines' entry points; those called from lwIP return true when the trampoline must
  // abort the pcb.
  [[nodiscard]] bool on_recv(pbuf* chain);
  void on_lwip_error();
  void on_timer();
  void on_timer_closed();

 private:
  bool close(bool reset, bool in_lwip);

  DnsTcpHost& host_;
  const FlowKey key_;
  tcp_pcb* pcb_ = nullptr;
  uv_timer_t timer_{};
  bool timer_open_ = false;
  bool closing_ = false;
  std::vector<std::uint8_t> input_;  // bytes of a message not yet complete (bounded)
  std::uint64_t answered_ = 0;
};

}  // namespace tunsocks::tunnel
