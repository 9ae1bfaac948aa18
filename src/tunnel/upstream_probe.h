// One connection to an upstream before a profile's flows use it: an upstream that is down
// is reported at once rather than as the first refused flow, and a SOCKS5 upstream is
// asked whether it takes a pipelined request (see HandshakeOptions::pipeline_request).
//
// The question is a CONNECT to 0.0.0.0:0 sent right behind the greeting (and the
// credentials): a server that reads pipelined bytes answers it at once, whatever it
// answers (0.0.0.0:0 is refused or not allowed); one that drops them waits for a request
// that never comes. Pipelining saves each new flow one round trip to the upstream and a
// read and a write on each side; it is used only where the upstream answered.
//
// Blocking (poll with timeouts): at start-up, before any flow, like the name lookup; after
// a switch to another upstream on libuv's thread pool, while the loop serves (requests go
// in turn until the answer comes).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "tunnel/tcp_flow.h"

namespace tunsocks::tunnel {

struct ProbeTimeouts {
  int connect_ms = 3000;
  int answer_ms = 500;  // a server that reads pipelined bytes answers in one round trip
  // When set, the probe gives up within kCancelCheckMs of it turning true (a probe on the
  // thread pool would otherwise hold a stopping program for up to both timeouts).
  const std::atomic<bool>* cancel = nullptr;
};

constexpr int kCancelCheckMs = 50;
constexpr const char* kProbeCancelled = "probe cancelled";

struct ProbeResult {
  std::string unreachable;  // why no connection was made; empty when it was
  bool pipelining = false;  // the upstream answered a request pipelined behind the greeting
  // Why pipelining stays off, for the log (empty when it is on or the upstream is SOCKS4).
  std::string no_pipelining;
  // The upstream refused our method or credentials: every flow will be refused the same.
  bool refused = false;
};

[[nodiscard]] ProbeResult probe_upstream(const Upstream& upstream, std::uint32_t fwmark,
                                         ProbeTimeouts timeouts = {});

}  // namespace tunsocks::tunnel
