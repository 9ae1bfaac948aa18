// lwIP driven by the libuv loop: one netif standing for the TUN device that owns every
// destination, lwIP's clock and timers on the loop, and one listener that takes every TCP
// connection (our patches in third_party/lwip). Only the tunnel's glue files see lwIP.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <uv.h>

#include "tunnel/packet.h"
#include "tunnel/tun_io.h"

struct tcp_pcb;

namespace tunsocks::tunnel {

class LwipStack {
 public:
  class Delegate {
   public:
    // A packet lwIP wants to send (to the TUN), in pieces. Must not call back into lwIP.
    virtual void on_lwip_output(PacketPieces packet) = 0;
    // lwIP completed a TCP handshake; return false to have the connection aborted.
    [[nodiscard]] virtual bool on_lwip_accept(tcp_pcb* pcb, const FlowKey& key) = 0;

   protected:
    ~Delegate() = default;
  };

  struct Counters {
    std::uint64_t input_errors = 0;    // lwIP refused the packet (memory)
    std::uint64_t accept_refused = 0;  // connections lwIP accepted that no flow claimed
  };

  struct Options {
    int mtu = 1500;  // the TUN's
    // The kernel completes the TCP checksums lwIP leaves out (TunFraming::checksum_offload).
    bool kernel_checksums = false;
    // The kernel cuts TCP segments to the MTU (TunFraming::segmentation): lwIP sends
    // segments of up to 64 KiB to applications whose MSS follows the TUN's MTU.
    bool large_segments = false;
  };

  // lwIP has global state: at most one stack exists at a time.
  LwipStack(uv_loop_t* loop, Delegate& delegate, Options options);
  ~LwipStack();
  LwipStack(const LwipStack&) = delete;
  LwipStack& operator=(const LwipStack&) = delete;

  // A buffer for the next TUN read (TunIo::kMaxPacket bytes; empty if memory ran out). A
  // large packet read into it is adopted by input() instead of copied.
  [[nodiscard]] std::span<std::uint8_t> receive_buffer();
  // Feeds one IP packet into lwIP, copied unless it is a large one in receive_buffer(). A
  // trusted TCP checksum is not verified (it may be partial: see TunIo::Packet).
  void input(PacketView packet, bool checksum_trusted = false);
  // Feeds a held SYN for `key`. TIME_WAIT pcbs left by earlier flows are dropped first
  // (none lives longer than a batch of input, see drop_time_wait), or lwIP would answer
  // the SYN from one with the same addresses and ports instead of accepting a connection.
  void input_syn(PacketView packet, const FlowKey& key);
  // Runs lwIP's due timers and drops TIME_WAIT pcbs (their owners, if still attached, get
  // ERR_CLSD in their err callback); the tunnel calls it once per batch of packets as well.
  void check_timeouts();
  // Stops the timer; call before the loop is closed (the stack's destructor frees it).
  void close();

  [[nodiscard]] const Counters& counters() const { return counters_; }
  // Memory blocks lwIP holds now (pcbs, segments, pbufs): back to its idle value once
  // every connection is gone.
  [[nodiscard]] static std::uint64_t live_allocations();

  // Trampolines' entry points.
  void output(PacketPieces packet);
  [[nodiscard]] bool accept(tcp_pcb* pcb);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Delegate& delegate_;
  Options options_;
  Counters counters_;
};

}  // namespace tunsocks::tunnel
