#include "server/server.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "net/log.h"

namespace tunsocks::server {
namespace {

// 64 KiB reads; a few hundred idle blocks kept for bursts (at most 16 MiB parked).
constexpr std::size_t kBlockSize = 64 * 1024;
constexpr std::size_t kMaxIdleBlocks = 256;
constexpr int kBacklog = 1024;

}  // namespace

std::expected<void, std::string> check_safe_defaults(const config::SocksdConfig& config) {
  if (!config.users.empty() || config.allow_open) return {};
  for (const net::Endpoint& endpoint : config.listen) {
    if (!net::is_loopback(endpoint.ip)) {
      return std::unexpected("refusing to listen on " + endpoint.to_string() +
                             " without users: anyone who can reach it could use this proxy; "
                             "add users (--user NAME:PASSWORD or \"users\" in the config) or "
                             "pass --allow-open (\"allow_open\": true) if that is intended");
    }
  }
  return {};
}

Server::Server(uv_loop_t* loop, config::SocksdConfig config)
    : loop_(loop),
      config_(std::move(config)),
      policy_(config_.rules, config_.allow_private),
      authenticator_(config_.users),
      limiter_(config_.limits.max_connections, config_.limits.max_connections_per_client),
      pool_(kBlockSize, kMaxIdleBlocks) {}

Server::~Server() {
  // The loop has run to completion: every session is gone, every handle closed.
  assert(sessions_.empty());
  graveyard_.clear();
}

std::expected<void, std::string> Server::start() {
  auto fail = [&](std::string message) -> std::expected<void, std::string> {
    for (auto& listener : listeners_)
      listener->handle.close();
    listeners_.clear();
    bound_.clear();
    reaper_.close();
    return std::unexpected(std::move(message));
  };
  if (reaper_.init([&](uv_idle_t* h) { return uv_idle_init(loop_, h); }) < 0) {
    return fail("cannot create an idle handle");
  }
  reaper_.get()->data = this;
  for (const net::Endpoint& endpoint : config_.listen) {
    auto listener = std::make_unique<Listener>();
    listener->server = this;
    int family = endpoint.ip.is_v4() ? AF_INET : AF_INET6;
    int rc = listener->handle.init(
        [&](uv_tcp_t* t) { return uv_tcp_init_ex(loop_, t, static_cast<unsigned>(family)); });
    if (rc == 0) {
      listener->handle.get()->data = listener.get();
      sockaddr_storage address = endpoint.to_sockaddr();
      // IPv6 listeners are IPv6 only, so "[::]:1080" and "0.0.0.0:1080" can coexist.
      rc = uv_tcp_bind(listener->handle.get(), reinterpret_cast<const sockaddr*>(&address),
                       endpoint.ip.is_v6() ? UV_TCP_IPV6ONLY : 0);
    }
    if (rc == 0) rc = uv_listen(listener->handle.stream(), kBacklog, &Server::on_connection);
    sockaddr_storage bound{};
    if (rc == 0 && !net::tcp_local_address(listener->handle.get(), bound)) rc = UV_EINVAL;
    if (rc < 0) {
      listener->handle.close();
      return fail("cannot listen on " + endpoint.to_string() + ": " + net::uv_error_message(rc) +
                  " (" + net::uv_error_name(rc) + ")");
    }
    auto actual = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&bound));
    listener->info.address = actual ? *actual : endpoint;
    listener->info.loopback_only = net::is_loopback(listener->info.address.ip);
    bound_.push_back(listener->info.address);
    listeners_.push_back(std::move(listener));
  }
  for (const net::Endpoint& endpoint : bound_) {
    TS_LOG_INFO("listening on %s", endpoint.to_string().c_str());
  }
  for (const config::Rule& rule : config_.rules) {
    if (!rule.users) continue;
    for (const std::string& name : *rule.users) {
      bool known = std::any_of(config_.users.begin(), config_.users.end(),
                               [&](const config::User& u) { return u.name == name; });
      if (!known) {
        TS_LOG_WARN("rule %s names user \"%s\", who is not configured: it can never match",
                    rule.path.c_str(), net::log_token(name).c_str());
      }
    }
  }
  return {};
}

void Server::set_stopped_callback(StoppedCallback callback, void* context) {
  stopped_callback_ = callback;
  stopped_context_ = context;
}

void Server::log_counters() const {
  TS_LOG_INFO("counters %s", counters_.to_json().c_str());
}

void Server::on_connection(uv_stream_t* stream, int status) {
  auto* listener = static_cast<Listener*>(stream->data);
  listener->server->accept(*listener, status);
}

void Server::accept(Listener& listener, int status) {
  if (status < 0) {
    TS_LOG_WARN("accept on %s failed: %s", listener.info.address.to_string().c_str(),
                net::uv_error_message(status).c_str());
    return;
  }
  net::UvHandle<uv_tcp_t> client;
  if (client.init([&](uv_tcp_t* t) { return uv_tcp_init(loop_, t); }) < 0) return;
  if (uv_accept(listener.handle.stream(), client.stream()) < 0) return;  // closed by the owner
  sockaddr_storage peer_address{};
  if (!net::tcp_peer_address(client.get(), peer_address)) return;  // the client is gone
  auto peer = net::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&peer_address));
  if (!peer) return;

  std::uint64_t id = ++next_id_;
  auto refusal = limiter_.try_acquire(peer->ip);
  if (refusal != ConnectionLimiter::Refusal::none) {
    refuse(id, std::move(client), *peer, refusal);
    return;
  }
  ++counters_.sessions_open;
  ++counters_.sessions_total;
  auto session = std::make_unique<Session>(*this, id, std::move(client), listener.info, *peer);
  Session& ref = *session;
  sessions_.emplace(id, std::move(session));
  ref.start();
}

void Server::refuse(std::uint64_t id, net::UvHandle<uv_tcp_t> client, const net::Endpoint& peer,
                    ConnectionLimiter::Refusal why) {
  // Accepted, then closed at once: the client sees a clear EOF instead of a connection
  // that hangs in the backlog, and existing sessions are not touched.
  ++counters_.limit_refusals;
  std::uint32_t limit =
      why == ConnectionLimiter::Refusal::total ? limiter_.max_total() : limiter_.max_per_client();
  TS_LOG_WARN("sid=%llu refusing %s: %s (%u) reached", static_cast<unsigned long long>(id),
              peer.to_string().c_str(), std::string(describe(why)).c_str(), limit);
  TS_LOG_INFO(
      "session id=%llu client=%s user=- proto=- cmd=- dst=- reply=- up=0 down=0 ms=0 end=limit",
      static_cast<unsigned long long>(id), peer.to_string().c_str());
  client.close();
}

void Server::session_closed(Session& session) {
  limiter_.release(session.peer().ip);
  if (counters_.sessions_open > 0) --counters_.sessions_open;
}

void Server::retire(Session& session) {
  auto it = sessions_.find(session.id());
  if (it == sessions_.end()) return;
  // Not destroyed here: this runs inside one of the session's own callbacks.
  graveyard_.push_back(std::move(it->second));
  sessions_.erase(it);
  if (reaper_) uv_idle_start(reaper_.get(), &Server::on_idle);
}

void Server::on_idle(uv_idle_t* idle) {
  static_cast<Server*>(idle->data)->reap();
}

void Server::reap() {
  graveyard_.clear();
  uv_idle_stop(reaper_.get());
  maybe_stopped();
}

void Server::shutdown() {
  if (shutting_down_) {
    TS_LOG_INFO("second stop signal: closing %zu sessions now", sessions_.size());
    close_all_sessions();
    return;
  }
  shutting_down_ = true;
  for (auto& listener : listeners_)
    listener->handle.close();
  TS_LOG_INFO("stopping: listeners closed, draining %zu sessions for up to %gs", sessions_.size(),
              config_.limits.drain_timeout_s);
  if (config_.limits.drain_timeout_s <= 0) {
    close_all_sessions();
  } else if (!sessions_.empty() &&
             drain_timer_.init([&](uv_timer_t* t) { return uv_timer_init(loop_, t); }) == 0) {
    drain_timer_.get()->data = this;
    auto ms = static_cast<std::uint64_t>(std::llround(config_.limits.drain_timeout_s * 1000.0));
    uv_timer_start(drain_timer_.get(), &Server::on_drain_timer, ms, 0);
  }
  maybe_stopped();
}

void Server::on_drain_timer(uv_timer_t* timer) {
  auto* self = static_cast<Server*>(timer->data);
  TS_LOG_INFO("drain time is up: closing %zu sessions", self->sessions_.size());
  self->close_all_sessions();
}

void Server::close_all_sessions() {
  // close() never erases synchronously (retire waits for close callbacks), but iterate
  // over a copy of the ids anyway: the map must not change under the loop.
  std::vector<std::uint64_t> ids;
  ids.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_)
    ids.push_back(id);
  for (std::uint64_t id : ids) {
    auto it = sessions_.find(id);
    if (it != sessions_.end()) it->second->close(EndReason::shutdown, CloseMode::abort);
  }
}

void Server::maybe_stopped() {
  if (!shutting_down_ || stopped_ || !sessions_.empty() || !graveyard_.empty()) return;
  stopped_ = true;
  drain_timer_.close();
  reaper_.close();
  TS_LOG_INFO("stopped");
  if (stopped_callback_ != nullptr) stopped_callback_(stopped_context_);
}

}  // namespace tunsocks::server
