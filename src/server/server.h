// socksd's server: listeners, the sessions they accept, limits, counters, and the drain on
// shutdown. Everything runs on one libuv loop. The server is not a singleton and knows
// nothing of signals or the command line (main.cpp wires those), so tests can run one
// in-process on port 0.
//
// Shutdown: the first shutdown() closes the listeners (new connections are refused) and
// lets open sessions finish for up to limits.drain_timeout_s, then closes what is left
// (end=shutdown). When the last session is gone, every handle of the server is closed and
// the stopped callback runs; the loop then has nothing left and uv_run returns.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <uv.h>

#include "config/socksd_config.h"
#include "net/buffer_pool.h"
#include "net/endpoint.h"
#include "net/uv_handle.h"
#include "server/auth.h"
#include "server/counters.h"
#include "server/limits.h"
#include "server/policy.h"
#include "server/session.h"
#include "server/udp_association.h"

namespace tunsocks::server {

// The startup rule of the safe defaults: a listener that is not loopback-only must not
// serve without users unless allow_open says so. The error is one line naming the fix.
[[nodiscard]] std::expected<void, std::string> check_safe_defaults(
    const config::SocksdConfig& config);

class Server {
 public:
  using StoppedCallback = void (*)(void* context);

  // `config.listen` must not be empty (the program fills in its default).
  Server(uv_loop_t* loop, config::SocksdConfig config);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Binds and listens on every address, then logs "listening on ADDR:PORT" (the real
  // port) for each. On failure nothing is left listening and the error names the address.
  [[nodiscard]] std::expected<void, std::string> start();
  // First call: stop accepting and drain. A second call closes every session at once.
  void shutdown();
  void set_stopped_callback(StoppedCallback callback, void* context);
  // Logs one line: "counters {...}".
  void log_counters() const;

  [[nodiscard]] const std::vector<net::Endpoint>& listening() const { return bound_; }
  [[nodiscard]] const Counters& counters() const { return counters_; }
  [[nodiscard]] std::size_t session_count() const { return sessions_.size(); }

  // For sessions.
  [[nodiscard]] uv_loop_t* loop() const { return loop_; }
  [[nodiscard]] const config::SocksdConfig& config() const { return config_; }
  [[nodiscard]] const Policy& policy() const { return policy_; }
  [[nodiscard]] const Authenticator& authenticator() const { return authenticator_; }
  [[nodiscard]] Counters& counters() { return counters_; }
  [[nodiscard]] net::BufferPool& pool() { return pool_; }
  [[nodiscard]] UdpShared& udp_shared() { return udp_shared_; }
  // close() was called: the session no longer counts against the limits.
  void session_closed(Session& session);
  // Nothing of the session is in flight any more: destroy it on a later loop turn.
  void retire(Session& session);

 private:
  struct Listener {
    Server* server = nullptr;
    net::UvHandle<uv_tcp_t> handle;
    ListenerInfo info;
  };

  static void on_connection(uv_stream_t* stream, int status);
  static void on_idle(uv_idle_t* idle);
  static void on_drain_timer(uv_timer_t* timer);

  void accept(Listener& listener, int status);
  void refuse(std::uint64_t id, net::UvHandle<uv_tcp_t> client, const net::Endpoint& peer,
              ConnectionLimiter::Refusal why);
  void close_all_sessions();
  void reap();
  void maybe_stopped();

  uv_loop_t* loop_;
  config::SocksdConfig config_;
  Policy policy_;
  Authenticator authenticator_;
  ConnectionLimiter limiter_;
  Counters counters_;
  net::BufferPool pool_;
  UdpShared udp_shared_;

  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<net::Endpoint> bound_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Session>> sessions_;
  std::vector<std::unique_ptr<Session>> graveyard_;
  net::UvHandle<uv_idle_t> reaper_;  // destroys retired sessions on the next loop turn
  net::UvHandle<uv_timer_t> drain_timer_;
  std::uint64_t next_id_ = 0;
  bool shutting_down_ = false;
  bool stopped_ = false;
  StoppedCallback stopped_callback_ = nullptr;
  void* stopped_context_ = nullptr;
};

}  // namespace tunsocks::server
