// One client connection of socksd, from accept to the last closed handle: the handshake
// (driven by the sans-I/O Handshake), authentication, the access decision, then CONNECT,
// BIND or UDP ASSOCIATE, and the session log line.
//
// Lifetime (STYLE.md): the Server owns every session. A session has one teardown path,
// close(), idempotent, which logs the session line and starts closing every handle; it
// counts its open handles and in-flight requests (refs_) and asks the server to destroy it
// only when that count reaches zero, and the server does so on a later loop turn. So no
// callback ever runs on a destroyed session, and no session is deleted under its own feet.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <uv.h>

#include "net/endpoint.h"
#include "net/uv_handle.h"
#include "server/handshake.h"
#include "server/policy.h"
#include "server/relay.h"
#include "server/udp_association.h"

namespace tunsocks::server {

class Server;

// Why a session ended: the session line's end= value.
enum class EndReason : std::uint8_t {
  eof,                   // both sides closed cleanly (half-closes relayed)
  reset,                 // one side reset or failed mid-relay; the other was reset too
  client_closed,         // the client went away before the relay started
  idle_timeout,          // no byte either way for idle_timeout_s (udp_idle_timeout_s)
  handshake_timeout,     // no complete request within handshake_timeout_s
  auth_failed,           // wrong credentials, or SOCKS4 where users are required
  no_acceptable_method,  // SOCKS5 greeting without a method we accept
  protocol_error,        // not SOCKS, or a malformed message
  denied,                // a rule or the safe defaults
  unsupported,           // BIND disabled, or a command the protocol lacks
  resolve_failed,        // the destination name did not resolve
  connect_failed,        // no destination address accepted the connection
  bind_timeout,          // no peer connected to the BIND port within bind_timeout_s
  limit,                 // over max_connections(_per_client) or max_udp_associations
  error,                 // a local failure (socket, bind, ...)
  shutdown,              // still open when the drain time ran out
};
[[nodiscard]] std::string_view to_string(EndReason reason);

// How the connections are closed.
enum class CloseMode : std::uint8_t {
  graceful,  // flush what is queued for the client (a failure reply), FIN, then close
  abort,     // close now (the kernel sends FIN, or RST if unread data is pending)
  reset,     // RST on both sides
};

struct ListenerInfo {
  net::Endpoint address;
  bool loopback_only = false;  // the safe defaults do not apply to such a listener
};

class Session final : private RelayOwner, private UdpOwner {
 public:
  Session(Server& server, std::uint64_t id, net::UvHandle<uv_tcp_t> client,
          const ListenerInfo& listener, net::Endpoint peer);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  void start();
  // The one teardown path. Idempotent.
  void close(EndReason reason, CloseMode mode);

  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] bool closing() const { return closing_; }
  [[nodiscard]] const net::Endpoint& peer() const { return peer_; }

 private:
  enum class Phase : std::uint8_t {
    handshake,
    authenticating,
    resolving,
    connecting,
    bind_waiting,
    relaying,
    udp,
    lingering,  // failure reply sent and FIN queued: draining the client until it closes
    closed,
  };

  struct Lookup;
  struct AuthWork;
  struct ControlWrite;

  // libuv trampolines (data points at the session).
  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_client_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_linger_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_timer(uv_timer_t* timer);
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result);
  static void on_connect(uv_connect_t* req, int status);
  static void on_bind_connection(uv_stream_t* server, int status);
  static void on_control_written(uv_write_t* req, int status);
  static void on_client_shutdown(uv_shutdown_t* req, int status);
  static void on_auth_work(uv_work_t* req);
  static void on_auth_done(uv_work_t* req, int status);
  static void on_handle_closed(void* session);

  // Handshake.
  void client_read(ssize_t nread, const uv_buf_t* buf);
  void handle_step(Handshake::Step step);
  void authenticate();
  void auth_finished(bool accepted);
  void flush_handshake_output();
  void send_to_client(socks::Bytes bytes);

  // Request.
  void request();
  [[nodiscard]] RequestFacts facts() const;
  void deny(const Decision& decision);
  void fail_request(socks::Socks5Reply code, EndReason reason);
  void resolve();
  void resolved(int status, addrinfo* result);
  void targets_decided(const std::vector<net::IpAddress>& addresses);

  // CONNECT.
  void start_connect();
  void try_next_target();
  void connected(int status);
  void connect_attempt_timed_out();

  // The address the client reached us on (BIND and UDP ASSOCIATE serve there). Asked of
  // the kernel only then: a CONNECT session does not pay a getsockname for it.
  [[nodiscard]] std::optional<net::IpAddress> local_ip() const;

  // BIND.
  void start_bind();
  void bind_connection(int status);

  // UDP ASSOCIATE.
  void start_udp();

  // Relay.
  void start_relay();
  void timer_fired();
  void arm_timer(double seconds);
  void arm_timer_ms(std::uint64_t ms);

  // Teardown.
  void linger_read(ssize_t nread, const uv_buf_t* buf);
  void finish_linger();
  void retain() { ++refs_; }
  void release();
  void log_end() const;

  // RelayOwner.
  void relay_retain() override { retain(); }
  void relay_release() override { release(); }
  void relay_moved(RelaySide from, std::size_t bytes) override;
  void relay_spliced() override;
  void relay_finished() override;
  void relay_failed(RelaySide side, int error) override;

  // UdpOwner.
  void udp_retain() override { retain(); }
  void udp_release() override { release(); }
  void udp_moved(bool up, std::size_t bytes) override;

  Server& server_;
  uv_loop_t* loop_;
  const std::uint64_t id_;
  const ListenerInfo listener_;
  const net::Endpoint peer_;
  const std::uint64_t started_ms_;

  net::UvHandle<uv_tcp_t> client_;
  net::UvHandle<uv_tcp_t> target_;         // CONNECT destination, or the BIND peer
  net::UvHandle<uv_tcp_t> bind_listener_;  // BIND: waits for the peer
  net::UvHandle<uv_timer_t> timer_;        // handshake / connect / bind / idle / linger
  Handshake handshake_;
  Relay relay_;
  std::unique_ptr<UdpAssociation> udp_;

  Phase phase_ = Phase::handshake;
  bool closing_ = false;
  bool retired_ = false;
  std::size_t refs_ = 0;  // open handles + requests in flight
  EndReason end_ = EndReason::error;

  Lookup* lookup_ = nullptr;  // uv_getaddrinfo in flight
  AuthWork* auth_ = nullptr;  // crypt(3) in flight on the thread pool
  uv_connect_t connect_req_{};
  bool connect_pending_ = false;
  bool attempt_timed_out_ = false;
  uv_shutdown_t shutdown_req_{};

  bool client_eof_ = false;  // the client half-closed before the relay started
  bool client_reading_ = false;
  std::string domain_;  // normalized destination name, if the request named one
  std::vector<net::IpAddress> targets_;
  std::size_t next_target_ = 0;
  int last_error_ = 0;
  std::uint64_t deadline_ms_ = 0;  // CONNECT: the whole attempt sequence
  std::uint64_t last_activity_ms_ = 0;
  std::string dst_text_ = "-";

  std::uint64_t up_ = 0;
  std::uint64_t down_ = 0;
};

// The reply a failed connect() deserves (RFC 1928 section 6).
[[nodiscard]] socks::Socks5Reply reply_for_connect_error(int uv_error);

}  // namespace tunsocks::server
