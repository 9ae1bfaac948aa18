#include "tunnel/udp_session.h"

#include <vector>

#include <doctest/doctest.h>

#include "tunnel/tunnel.h"

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

// A host that is never asked to do I/O: the sessions here are not started, so they stay
// in the phase where datagrams are queued.
class QueueHost final : public UdpHost {
 public:
  explicit QueueHost(UdpSettings settings) : settings_(settings) {}
  uv_loop_t* loop() override { return nullptr; }
  const FlowSettings& flow_settings() const override { return flow_; }
  const UdpSettings& udp_settings() const override { return settings_; }
  UdpCounters& udp_counters() override { return counters_; }
  void write_udp(const net::Endpoint&, const net::Endpoint&, PacketView) override {}
  uv_buf_t read_buffer(std::size_t) override { return uv_buf_init(nullptr, 0); }
  void udp_refused(UdpSession&) override {}
  bool udp_upstream_full(UdpSession&) override { return false; }
  void udp_active(UdpSession&) override {}
  void udp_finished(UdpSession&) override {}

  FlowSettings flow_;
  UdpSettings settings_;
  UdpCounters counters_;
};

net::Endpoint endpoint(const char* text) {
  return *net::Endpoint::parse(text);
}

}  // namespace

TEST_CASE("datagrams_queued_during_setup_are_bounded_by_count") {
  QueueHost host({.queue_datagrams = 4, .queue_bytes = 1 << 20});
  UdpSession session(host, 1, endpoint("10.0.0.2:4000"));
  const Bytes payload(100, 0xAB);
  for (int i = 0; i < 10; ++i)
    session.send(endpoint("192.0.2.7:53"), payload);
  CHECK(host.counters_.dropped == 6);
  CHECK(host.counters_.dropped_by_reason[static_cast<std::size_t>(UdpDrop::queue_full)] == 6);
  CHECK(session.datagrams_up() == 0);
}

TEST_CASE("datagrams_queued_during_setup_are_bounded_by_bytes") {
  QueueHost host({.queue_datagrams = 100, .queue_bytes = 1000});
  UdpSession session(host, 1, endpoint("10.0.0.2:4000"));
  const Bytes payload(400, 0xAB);
  for (int i = 0; i < 5; ++i)
    session.send(endpoint("192.0.2.7:53"), payload);
  // 400 + 400 fit, the third would make 1200.
  CHECK(host.counters_.dropped_by_reason[static_cast<std::size_t>(UdpDrop::queue_full)] == 3);
}

TEST_CASE("datagram_too_large_for_the_relay_is_dropped_not_truncated") {
  QueueHost host({});
  UdpSession session(host, 1, endpoint("10.0.0.2:4000"));
  // IPv4 destination: 10 bytes of SOCKS header + payload must fit 65507.
  session.send(endpoint("192.0.2.7:9"), Bytes(65497, 1));
  CHECK(host.counters_.dropped == 0);
  session.send(endpoint("192.0.2.7:9"), Bytes(65498, 1));
  CHECK(host.counters_.dropped_by_reason[static_cast<std::size_t>(UdpDrop::too_large)] == 1);
  // IPv6 destination: 22 bytes of header.
  session.send(endpoint("[2001:db8::7]:9"), Bytes(65485, 1));
  CHECK(host.counters_.dropped_by_reason[static_cast<std::size_t>(UdpDrop::too_large)] == 1);
  session.send(endpoint("[2001:db8::7]:9"), Bytes(65486, 1));
  CHECK(host.counters_.dropped_by_reason[static_cast<std::size_t>(UdpDrop::too_large)] == 2);
}

TEST_CASE("association_key_is_the_application_socket_alone") {
  EndpointHash hash;
  CHECK(hash(endpoint("10.0.0.2:4000")) == hash(endpoint("10.0.0.2:4000")));
  CHECK(hash(endpoint("10.0.0.2:4000")) != hash(endpoint("10.0.0.2:4001")));
  CHECK(hash(endpoint("10.0.0.2:4000")) != hash(endpoint("10.0.0.3:4000")));
  CHECK(endpoint("[fd00::2]:4000") != endpoint("10.0.0.2:4000"));
}
