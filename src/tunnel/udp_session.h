// One UDP association: every datagram one application socket (its source address and port)
// sends, to any number of destinations, goes through one SOCKS5 UDP ASSOCIATE. The
// association is a TCP control connection to the upstream (which must stay open, RFC 1928
// section 7) plus a UDP socket talking to the relay the upstream named in its reply.
// Datagrams that arrive while the association is being set up wait in a bounded queue.
//
// Lifetime (STYLE.md): the tunnel's session table owns every session. One teardown path,
// close(), closes the three handles; the session tells its host it is done only when every
// handle is closed and every send has called back, and the host destroys it on a later
// loop turn.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <utility>
#include <vector>

#include <uv.h>

#include "net/endpoint.h"
#include "tunnel/client_handshake.h"
#include "tunnel/packet.h"
#include "tunnel/tcp_flow.h"

namespace tunsocks::tunnel {

class UdpSession;

// Why a UDP datagram was not relayed. udp_dropped in the counters is the sum.
enum class UdpDrop : std::uint8_t {
  queue_full,       // the association was not ready and its queue was full
  too_large,        // SOCKS header + payload would not fit one UDP datagram to the relay
  fragment,         // an IP fragment that could not be reassembled (bounds, overlap, timeout)
  no_udp_upstream,  // SOCKS4/4a upstream, or the upstream refused UDP ASSOCIATE recently
  session_limit,    // --max-udp-sessions associations are open
  bad_reply,        // from the relay: unparsable, FRAG != 0, a name, or a family we cannot map
  malformed,        // from the application: a UDP header that does not fit its packet
  send_failed,      // the relay socket would not take it
  session_closed,   // queued when the association failed or ended
  unknown_fake_ip,  // to a fake-ip pool address that stands for no name
  blocked,          // the profile says "udp": "block" (DNS is not affected)
  stale_reply,      // on a recycled association: from no destination its new socket sent to
  count_,
};
[[nodiscard]] std::string_view describe(UdpDrop reason);

struct UdpCounters {
  std::uint64_t sessions_open = 0;   // held by application sockets (and the DNS ones)
  std::uint64_t sessions_total = 0;  // a taken spare counts from when it is taken
  std::uint64_t spares_open = 0;     // set up ahead of need (UdpSettings::spares)
  std::uint64_t spares_total = 0;
  std::uint64_t spares_taken = 0;  // given to a new application socket
  // What the upstream holds of ours: the limits count spares too.
  [[nodiscard]] std::uint64_t associations_open() const { return sessions_open + spares_open; }
  std::uint64_t sessions_evicted = 0;   // idle ones closed to make room for a new one
  std::uint64_t setup_retries = 0;      // associations asked again after an upstream limit
  std::uint64_t sessions_recycled = 0;  // answered ones handed to a new socket at the limit
  std::uint64_t datagrams_up = 0;       // sent to the relay
  std::uint64_t datagrams_down = 0;     // written to the TUN
  std::uint64_t bytes_up = 0;           // payload bytes
  std::uint64_t bytes_down = 0;
  std::uint64_t dropped = 0;  // total of dropped_by_reason
  std::array<std::uint64_t, static_cast<std::size_t>(UdpDrop::count_)> dropped_by_reason{};

  void drop(UdpDrop reason, std::uint64_t count = 1) {
    dropped += count;
    dropped_by_reason[static_cast<std::size_t>(reason)] += count;
  }
};

struct UdpSettings {
  std::uint64_t idle_timeout_ms = 60'000;
  // An association whose datagrams all went to port 53 is a resolver's: its answers come
  // within seconds, so it need not hold a socket and a control connection for a minute.
  std::uint64_t dns_idle_timeout_ms = 10'000;
  std::size_t max_sessions = 1024;
  // At the limit, hand an answered association to a new socket rather than replace it.
  bool recycle = true;
  // While the association is set up (a TCP connect and two round trips, milliseconds on a
  // busy machine): a stream of 50000/s sends 50 per ms meanwhile. queue_bytes bounds the
  // memory; the count bounds the per-datagram overhead of many tiny ones.
  std::size_t queue_datagrams = 512;
  std::size_t queue_bytes = 256 * 1024;
  // Associations set up ahead of need while UDP is in use: a new socket's first datagram
  // then leaves at once instead of after a TCP connect and a SOCKS exchange with the
  // upstream (two or three round trips to it). 0: none.
  std::size_t spares = 4;
};

// What a session needs from the tunnel that owns it.
class UdpHost {
 public:
  [[nodiscard]] virtual uv_loop_t* loop() = 0;
  [[nodiscard]] virtual const FlowSettings& flow_settings() const = 0;
  [[nodiscard]] virtual const UdpSettings& udp_settings() const = 0;
  [[nodiscard]] virtual UdpCounters& udp_counters() = 0;
  // Writes a reply datagram from `source` to the application's `destination` to the TUN.
  virtual void write_udp(const net::Endpoint& source, const net::Endpoint& destination,
                         PacketView payload) = 0;
  // A buffer for one relay read, consumed before the read callback returns.
  [[nodiscard]] virtual uv_buf_t read_buffer(std::size_t at_most) = 0;
  // The upstream refused UDP ASSOCIATE (reply code `reply`).
  virtual void udp_refused(UdpSession& session) = 0;
  // The upstream ended `session`'s set-up the way a server at its limit does (a general
  // failure, or the connection closed before a reply). True when the host made room and
  // took over the session's datagrams with a new association; `session` then just ends.
  [[nodiscard]] virtual bool udp_upstream_full(UdpSession& session) = 0;
  // A datagram went up or came down (the host keeps the associations in that order).
  virtual void udp_active(UdpSession& session) = 0;
  // Every handle closed and send completed: remove (and log) the session on a later turn.
  virtual void udp_finished(UdpSession& session) = 0;

 protected:
  ~UdpHost() = default;
};

enum class UdpEnd : std::uint8_t {
  none,
  idle_timeout,
  control_closed,        // the upstream closed (or reset) the control connection
  refused,               // the upstream answered UDP ASSOCIATE with an error
  handshake_failed,      // the upstream broke the protocol or rejected our credentials
  upstream_unreachable,  // the control connection could not be made
  connect_timeout,
  relay_error,  // the relay socket failed, or the reply named a relay we cannot use
  shutdown,     // the tunnel is stopping
  switched,     // a profile switch: open associations reset, or the shared DNS one retired
  evicted,      // idle and least recently used: closed to make room for a new association
  retried,      // the upstream was full; a new association took over after making room
};
[[nodiscard]] std::string_view describe(UdpEnd reason);

class UdpSession {
 public:
  enum class Phase : std::uint8_t { dialing, handshaking, ready, closing };

  UdpSession(UdpHost& host, std::uint64_t id, const net::Endpoint& app);
  // A spare: set up like any association, for no application socket yet (adopt()).
  struct Spare {};
  UdpSession(UdpHost& host, std::uint64_t id, Spare);
  ~UdpSession();
  UdpSession(const UdpSession&) = delete;
  UdpSession& operator=(const UdpSession&) = delete;

  // Dials the upstream, at once or after `delay_ms`. The session may finish (refused)
  // before it returns.
  void start(std::uint64_t delay_ms = 0);
  // One datagram from the application to `destination`: sent now, queued, or dropped and
  // counted. `name`: the destination is a fake-ip address standing for this name, which
  // the relay is given instead (ATYP 3).
  void send(const net::Endpoint& destination, PacketView payload,
            const std::string* name = nullptr);
  // Remembers that `fake` stands for `name`, so that replies (which come from the address
  // the relay resolved) reach the application from `fake`, the address it sent to. Returns
  // true when newly remembered (the caller then holds the pool entry until the session
  // ends); false when known or when the session already remembers its maximum.
  bool remember_name(const std::string& name, const net::Endpoint& fake);

  struct Named {
    std::string name;
    net::Endpoint fake;
  };
  [[nodiscard]] const std::vector<Named>& named() const { return named_; }
  // The tunnel is stopping, or a switch ends this association.
  void stop(UdpEnd reason = UdpEnd::shutdown);
  // At the association limit, this answered association goes to the application socket
  // `app` instead of being closed and replaced. It forgets its destinations (the fake-ip
  // names are returned: the host releases their pool entries), and from now on passes on
  // only replies from destinations the new socket sent to: a late reply for the old socket
  // from elsewhere is dropped (stale_reply).
  [[nodiscard]] std::vector<Named> recycle(const net::Endpoint& app);
  // A spare goes to the application socket `app`: from now on it is an ordinary session.
  void adopt(const net::Endpoint& app);
  [[nodiscard]] bool spare() const { return spare_; }
  [[nodiscard]] std::uint64_t recycled() const { return recycled_; }
  // Moves the datagrams waiting for set-up, and the fake-ip names (with the pool entries
  // the host holds for them), to `next`, which replaces this association.
  void hand_over(UdpSession& next);

  // Room-making (Tunnel::make_udp_room): which association the application is least
  // likely to miss. A request/response exchange that got its answer ranks first.
  [[nodiscard]] bool exchange_answered() const {
    return phase_ == Phase::ready && last_was_reply_ && exchange_up_ <= 2;
  }
  [[nodiscard]] std::uint64_t last_activity_ms() const { return last_activity_ms_; }
  // How many set-ups came before this one for the same datagrams (bounds the retries).
  [[nodiscard]] int attempt() const { return attempt_; }
  void set_attempt(int attempt) { attempt_ = attempt; }
  // Where the host keeps this session in its least-recently-active order.
  std::list<UdpSession*>::iterator lru_position;

  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] const net::Endpoint& app() const { return app_; }
  [[nodiscard]] const Upstream& upstream() const { return *upstream_server_; }
  [[nodiscard]] Phase phase() const { return phase_; }
  [[nodiscard]] UdpEnd end_reason() const { return end_; }
  [[nodiscard]] std::string reply_text() const { return handshake_.reply_text(); }
  [[nodiscard]] std::optional<std::uint8_t> reply_code() const { return handshake_.reply_code(); }
  [[nodiscard]] const std::string& detail() const { return detail_; }
  [[nodiscard]] const std::string& relay_text() const { return relay_text_; }
  [[nodiscard]] std::uint64_t datagrams_up() const { return datagrams_up_; }
  [[nodiscard]] std::uint64_t datagrams_down() const { return datagrams_down_; }
  [[nodiscard]] std::uint64_t bytes_up() const { return bytes_up_; }
  [[nodiscard]] std::uint64_t bytes_down() const { return bytes_down_; }
  [[nodiscard]] std::uint64_t started_ms() const { return started_ms_; }

  // Event handlers, called by the trampolines in udp_session.cpp (public only for them).
  void on_connected(int status);
  void on_control_read(ssize_t nread, const uv_buf_t* buffer);
  void on_control_write_done(int status);
  void on_relay_read(ssize_t nread, const uv_buf_t* buffer, const sockaddr* from);
  void on_send_done(int status);
  void dial();
  void on_timer();
  void on_handle_closed();
  [[nodiscard]] uv_buf_t alloc_buffer();
  // For the relay socket: room for several datagrams, read with one recvmmsg.
  [[nodiscard]] uv_buf_t relay_buffer();

 private:
  struct Queued {
    net::Endpoint destination;
    PacketBytes payload;
    std::optional<std::string> name;
  };

  void handshake_step();
  void on_handshake_done();
  bool open_relay(std::string& error);
  void send_now(const net::Endpoint& destination, PacketView payload, const std::string* name);
  [[nodiscard]] std::optional<net::Endpoint> reply_from(const socks::Address& address) const;
  void close(UdpEnd reason);
  // A set-up ended the way a full upstream ends it: let the host retry elsewhere.
  [[nodiscard]] bool retried_by_host();
  void release();
  [[nodiscard]] std::uint64_t idle_limit() const;

  UdpHost& host_;
  const std::uint64_t id_;
  net::Endpoint app_;
  const std::shared_ptr<const Upstream> upstream_server_;
  ClientHandshake handshake_;
  Phase phase_ = Phase::dialing;
  UdpEnd end_ = UdpEnd::none;
  std::string detail_;
  std::string relay_text_ = "-";

  uv_tcp_t control_{};
  uv_udp_t relay_{};
  uv_timer_t timer_{};
  uv_connect_t connect_request_{};
  int outstanding_ = 0;  // open handles + requests in flight; the session ends at 0
  bool relay_open_ = false;
  bool control_open_ = false;
  bool reading_control_ = false;
  bool heard_upstream_ = false;  // any byte on the control connection
  bool last_was_reply_ = false;
  bool spare_ = false;
  int attempt_ = 0;
  std::uint64_t recycled_ = 0;     // times handed to a new application socket
  std::uint64_t exchange_up_ = 0;  // datagrams sent for the current application socket

  std::vector<Named> named_;           // fake-ip destinations (bounded)
  std::vector<net::Endpoint> direct_;  // the latest IP destinations (bounded)
  std::vector<Queued> queue_;
  std::size_t queued_bytes_ = 0;
  std::size_t sends_in_flight_ = 0;
  bool only_dns_ = true;
  std::uint64_t datagrams_up_ = 0;
  std::uint64_t datagrams_down_ = 0;
  std::uint64_t bytes_up_ = 0;
  std::uint64_t bytes_down_ = 0;
  std::uint64_t started_ms_ = 0;
  std::uint64_t last_activity_ms_ = 0;
};

}  // namespace tunsocks::tunnel
