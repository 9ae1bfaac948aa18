// UdpSession on a real libuv loop against a scripted SOCKS5 server and UDP relay on
// loopback (port 0, no root, no network): every test ends with all handles closed and
// uv_loop_close() == 0.
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "tunnel/udp_session.h"

namespace {

using namespace tunsocks;
using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

// A SOCKS5 server for one client: answers the greeting with "no auth", the UDP ASSOCIATE
// with `reply` and BND = its relay; the relay echoes each datagram back with the header
// unchanged (so the reply's source is the destination the client named).
struct ScriptedUpstream {
  uv_loop_t* loop;
  std::uint8_t reply = 0;
  uv_tcp_t listener{};
  uv_tcp_t client{};
  uv_udp_t relay{};
  bool client_open = false;
  Bytes received;
  bool greeted = false, answered = false;
  std::vector<std::unique_ptr<Bytes>> writes;
  std::vector<std::unique_ptr<uv_write_t>> write_requests;
  std::array<char, 65536> buffer{};
  sockaddr_in listen_address{}, relay_address{};
  sockaddr_in last_client{};  // where the relay's last datagram came from

  // A datagram from the relay that answers nothing (a late or unsolicited reply).
  void inject(const Bytes& datagram) {
    uv_buf_t out = uv_buf_init(const_cast<char*>(reinterpret_cast<const char*>(datagram.data())),
                               static_cast<unsigned>(datagram.size()));
    uv_udp_try_send(&relay, &out, 1, reinterpret_cast<const sockaddr*>(&last_client));
  }

  explicit ScriptedUpstream(uv_loop_t* l, std::uint8_t code) : loop(l), reply(code) {
    listener.data = client.data = relay.data = this;
    uv_tcp_init(loop, &listener);
    uv_ip4_addr("127.0.0.1", 0, &listen_address);
    uv_tcp_bind(&listener, reinterpret_cast<const sockaddr*>(&listen_address), 0);
    int length = sizeof listen_address;
    uv_tcp_getsockname(&listener, reinterpret_cast<sockaddr*>(&listen_address), &length);
    uv_listen(reinterpret_cast<uv_stream_t*>(&listener), 1, on_connection);
    uv_udp_init(loop, &relay);
    uv_ip4_addr("127.0.0.1", 0, &relay_address);
    uv_udp_bind(&relay, reinterpret_cast<const sockaddr*>(&relay_address), 0);
    length = sizeof relay_address;
    uv_udp_getsockname(&relay, reinterpret_cast<sockaddr*>(&relay_address), &length);
    uv_udp_recv_start(&relay, on_alloc, on_datagram);
  }

  static ScriptedUpstream& of(void* data) { return *static_cast<ScriptedUpstream*>(data); }
  static void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* out) {
    auto& self = of(handle->data);
    *out = uv_buf_init(self.buffer.data(), static_cast<unsigned>(self.buffer.size()));
  }
  static void on_connection(uv_stream_t* server, int) {
    auto& self = of(server->data);
    uv_tcp_init(self.loop, &self.client);
    self.client_open = true;
    uv_accept(server, reinterpret_cast<uv_stream_t*>(&self.client));
    uv_read_start(reinterpret_cast<uv_stream_t*>(&self.client), on_alloc, on_read);
  }
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
    auto& self = of(stream->data);
    if (nread <= 0) return;
    self.received.insert(self.received.end(), buffer->base, buffer->base + nread);
    if (!self.greeted && self.received.size() >= 3) {
      self.greeted = true;
      self.received.erase(self.received.begin(), self.received.begin() + 3);
      self.send({5, 0});
    }
    if (self.greeted && !self.answered && self.received.size() >= 10) {
      self.answered = true;
      Bytes answer = {5, self.reply, 0, 1};
      const auto* ip = reinterpret_cast<const std::uint8_t*>(&self.relay_address.sin_addr);
      answer.insert(answer.end(), ip, ip + 4);
      const std::uint16_t port = ntohs(self.relay_address.sin_port);
      answer.push_back(static_cast<std::uint8_t>(port >> 8));
      answer.push_back(static_cast<std::uint8_t>(port));
      self.send(answer);
    }
  }
  static void on_datagram(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buffer,
                          const sockaddr* from, unsigned) {
    if (nread <= 0 || from == nullptr) return;
    std::memcpy(&of(handle->data).last_client, from, sizeof(sockaddr_in));
    uv_buf_t echo = uv_buf_init(buffer->base, static_cast<unsigned>(nread));
    uv_udp_try_send(handle, &echo, 1, from);
  }
  void send(Bytes bytes) {
    writes.push_back(std::make_unique<Bytes>(std::move(bytes)));
    write_requests.push_back(std::make_unique<uv_write_t>());
    uv_buf_t out = uv_buf_init(reinterpret_cast<char*>(writes.back()->data()),
                               static_cast<unsigned>(writes.back()->size()));
    uv_write(write_requests.back().get(), reinterpret_cast<uv_stream_t*>(&client), &out, 1,
             nullptr);
  }
  void close() {
    uv_close(reinterpret_cast<uv_handle_t*>(&listener), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&relay), nullptr);
    if (client_open) uv_close(reinterpret_cast<uv_handle_t*>(&client), nullptr);
  }
};

struct Reply {
  net::Endpoint source, destination;
  Bytes payload;
};

class LoopHost final : public UdpHost {
 public:
  LoopHost(uv_loop_t* loop, const sockaddr_in& upstream) : loop_(loop) {
    auto server = std::make_shared<Upstream>();
    std::memcpy(&server->address, &upstream, sizeof upstream);
    flow_.upstream = std::move(server);
    udp_.idle_timeout_ms = 200;
    udp_.dns_idle_timeout_ms = 200;
    flow_.connect_timeout_ms = 2000;
  }
  uv_loop_t* loop() override { return loop_; }
  const FlowSettings& flow_settings() const override { return flow_; }
  const UdpSettings& udp_settings() const override { return udp_; }
  UdpCounters& udp_counters() override { return counters_; }
  void write_udp(const net::Endpoint& source, const net::Endpoint& destination,
                 PacketView payload) override {
    replies_.push_back({source, destination, Bytes(payload.begin(), payload.end())});
  }
  uv_buf_t read_buffer(std::size_t at_most) override {
    return uv_buf_init(buffer_.data(), static_cast<unsigned>(std::min(at_most, buffer_.size())));
  }
  void udp_refused(UdpSession&) override { ++refusals_; }
  bool udp_upstream_full(UdpSession&) override { return false; }
  void udp_active(UdpSession&) override {}
  void udp_finished(UdpSession&) override { finished_ = true; }

  uv_loop_t* loop_;
  FlowSettings flow_;
  UdpSettings udp_;
  UdpCounters counters_;
  std::vector<Reply> replies_;
  // As large as the tunnel's: the relay socket reads 4 datagrams per recvmmsg.
  std::vector<char> buffer_ = std::vector<char>(4 * 65536);
  int refusals_ = 0;
  bool finished_ = false;
};

// Runs the loop until `done` or `ms` pass; a ticking timer keeps each turn short.
void run_until(uv_loop_t* loop, const std::function<bool()>& done, std::uint64_t ms) {
  uv_timer_t tick{};
  uv_timer_init(loop, &tick);
  uv_timer_start(
      &tick, [](uv_timer_t*) {}, 5, 5);
  const std::uint64_t start = uv_now(loop);
  while (!done() && uv_now(loop) - start < ms)
    uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
}

// Closes the upstream's handles and checks that nothing else is left on the loop.
void finish(uv_loop_t* loop, ScriptedUpstream& upstream) {
  upstream.close();
  uv_run(loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(loop) == 0);
}

const net::Endpoint kApp = *net::Endpoint::parse("10.0.0.2:40000");
const net::Endpoint kRemote = *net::Endpoint::parse("192.0.2.7:9");

}  // namespace

TEST_CASE("queued_datagram_round_trip_then_idle_timeout") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  const Bytes hello = {'h', 'e', 'l', 'l', 'o'};
  session->send(kRemote, hello);  // queued: the association is not up yet
  run_until(
      &loop, [&] { return !host.replies_.empty(); }, 3000);
  REQUIRE(host.replies_.size() == 1);
  CHECK(host.replies_[0].source == kRemote);
  CHECK(host.replies_[0].destination == kApp);
  CHECK(host.replies_[0].payload == hello);
  CHECK(session->datagrams_up() == 1);
  CHECK(session->datagrams_down() == 1);
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  CHECK(session->end_reason() == UdpEnd::idle_timeout);
  CHECK(host.counters_.sessions_open == 0);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("a_spare_is_set_up_for_no_socket_then_serves_the_one_that_adopts_it") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  host.udp_.idle_timeout_ms = 60'000;
  host.udp_.dns_idle_timeout_ms = 60'000;
  auto session = std::make_unique<UdpSession>(host, 1, UdpSession::Spare{});
  session->start();
  CHECK(session->spare());
  CHECK(host.counters_.spares_open == 1);
  CHECK(host.counters_.spares_total == 1);
  CHECK(host.counters_.sessions_open == 0);
  CHECK(host.counters_.sessions_total == 0);
  run_until(
      &loop, [&] { return session->phase() == UdpSession::Phase::ready; }, 3000);
  REQUIRE(session->phase() == UdpSession::Phase::ready);

  session->adopt(kApp);
  CHECK_FALSE(session->spare());
  CHECK(session->app() == kApp);
  CHECK(host.counters_.spares_open == 0);
  CHECK(host.counters_.spares_taken == 1);
  CHECK(host.counters_.sessions_open == 1);
  CHECK(host.counters_.sessions_total == 1);
  const Bytes hello = {'s', 'p', 'a', 'r', 'e'};
  session->send(kRemote, hello);  // sent at once: nothing queued
  CHECK(session->datagrams_up() == 1);
  run_until(
      &loop, [&] { return !host.replies_.empty(); }, 3000);
  REQUIRE(host.replies_.size() == 1);
  CHECK(host.replies_[0].source == kRemote);
  CHECK(host.replies_[0].destination == kApp);
  CHECK(host.replies_[0].payload == hello);
  session->stop();
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.counters_.sessions_open == 0);
  CHECK(host.counters_.spares_open == 0);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("a_spare_no_socket_takes_ends_idle_and_counts_as_a_spare_only") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  auto session = std::make_unique<UdpSession>(host, 1, UdpSession::Spare{});
  session->start();
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  CHECK(session->end_reason() == UdpEnd::idle_timeout);
  CHECK(session->spare());
  CHECK(host.counters_.spares_open == 0);
  CHECK(host.counters_.spares_total == 1);
  CHECK(host.counters_.spares_taken == 0);
  CHECK(host.counters_.sessions_total == 0);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("refused_udp_associate_drops_the_queue_and_tells_the_host") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0x07);
  LoopHost host(&loop, upstream.listen_address);
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  session->send(kRemote, Bytes{1, 2, 3});
  session->send(kRemote, Bytes{4, 5, 6});
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  CHECK(host.refusals_ == 1);
  CHECK(session->end_reason() == UdpEnd::refused);
  CHECK(host.counters_.dropped_by_reason[static_cast<std::size_t>(UdpDrop::session_closed)] == 2);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("stop_while_dialing_closes_every_handle") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  session->stop();
  session->stop();  // idempotent
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  CHECK(session->end_reason() == UdpEnd::shutdown);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("upstream_closing_the_control_connection_ends_the_association") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  host.udp_.idle_timeout_ms = 60'000;
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  session->send(kRemote, Bytes{7});
  run_until(
      &loop, [&] { return !host.replies_.empty(); }, 3000);
  REQUIRE(upstream.client_open);
  upstream.client_open = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&upstream.client), nullptr);
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  CHECK(session->end_reason() == UdpEnd::control_closed);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("fake_ip_destination_goes_by_name_and_replies_come_from_the_fake_address") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  const net::Endpoint fake = *net::Endpoint::parse("198.18.0.5:5000");
  const std::string name = "server.test";
  CHECK(session->remember_name(name, fake));
  CHECK_FALSE(session->remember_name(name, fake));  // known: the caller holds it once
  // The relay echoes the header, so the reply names its source by the name.
  session->send(fake, Bytes{1, 2}, &name);
  run_until(
      &loop, [&] { return !host.replies_.empty(); }, 3000);
  REQUIRE(host.replies_.size() == 1);
  CHECK(host.replies_[0].source == fake);
  CHECK(host.replies_[0].payload == Bytes{1, 2});
  session->stop();
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("recycled_association_serves_the_new_socket_and_drops_replies_for_the_old_one") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  host.udp_.idle_timeout_ms = 5000;
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  session->send(kRemote, Bytes{'q', '1'});
  run_until(
      &loop, [&] { return !host.replies_.empty(); }, 3000);
  REQUIRE(host.replies_.size() == 1);
  CHECK(session->exchange_answered());

  const net::Endpoint next_app = *net::Endpoint::parse("10.0.0.2:40001");
  const net::Endpoint other = *net::Endpoint::parse("192.0.2.8:9");
  CHECK(session->recycle(next_app).empty());
  CHECK(session->app() == next_app);
  CHECK(session->recycled() == 1);
  CHECK_FALSE(session->exchange_answered());
  // A late reply from the old socket's destination must not reach the new socket.
  upstream.inject({0, 0, 0, 1, 192, 0, 2, 7, 0, 9, 'l', 'a', 't', 'e'});
  const auto stale = static_cast<std::size_t>(UdpDrop::stale_reply);
  run_until(
      &loop, [&] { return host.counters_.dropped_by_reason[stale] == 1; }, 3000);
  CHECK(host.counters_.dropped_by_reason[stale] == 1);
  CHECK(host.replies_.size() == 1);
  // What the new socket sends to is answered, from where it sent to, to the new socket.
  session->send(other, Bytes{'q', '2'});
  run_until(
      &loop, [&] { return host.replies_.size() == 2; }, 3000);
  REQUIRE(host.replies_.size() == 2);
  CHECK(host.replies_[1].source == other);
  CHECK(host.replies_[1].destination == next_app);
  CHECK(host.replies_[1].payload == Bytes{'q', '2'});
  CHECK(session->exchange_answered());
  session->stop();
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  session.reset();
  finish(&loop, upstream);
}

TEST_CASE("a_burst_of_replies_read_together_arrives_whole_in_order_and_counted") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ScriptedUpstream upstream(&loop, 0);
  LoopHost host(&loop, upstream.listen_address);
  auto session = std::make_unique<UdpSession>(host, 1, kApp);
  session->start();
  run_until(
      &loop, [&] { return session->phase() == UdpSession::Phase::ready; }, 3000);
  REQUIRE(session->phase() == UdpSession::Phase::ready);
  // 50 sends in one loop turn: their echoes wait together on the relay socket, more than
  // one recvmmsg takes (16), with sizes from 0 to 1200 bytes.
  constexpr int kCount = 50;
  std::vector<Bytes> sent;
  for (int i = 0; i < kCount; ++i) {
    Bytes payload(static_cast<std::size_t>(i * 24));
    for (std::size_t j = 0; j < payload.size(); ++j)
      payload[j] = static_cast<std::uint8_t>(i * 7 + j);
    session->send(kRemote, payload);
    sent.push_back(std::move(payload));
  }
  run_until(
      &loop, [&] { return host.replies_.size() >= kCount; }, 3000);
  REQUIRE(host.replies_.size() == kCount);
  for (int i = 0; i < kCount; ++i) {
    CHECK(host.replies_[i].payload == sent[i]);
    CHECK(host.replies_[i].source == kRemote);
    CHECK(host.replies_[i].destination == kApp);
  }
  CHECK(session->datagrams_up() == kCount);
  CHECK(session->datagrams_down() == kCount);
  CHECK(host.counters_.datagrams_down == kCount);
  CHECK(host.counters_.dropped == 0);
  session->stop();
  run_until(
      &loop, [&] { return host.finished_; }, 3000);
  CHECK(host.finished_);
  session.reset();
  finish(&loop, upstream);
}
