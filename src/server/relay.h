// The TCP relay between a client and its destination (CONNECT) or peer (BIND).
//
// Flow control: each direction holds at most one read buffer (64 KiB from the loop's pool)
// in flight. A read is first written with uv_try_write; what the kernel takes at once
// frees the buffer on the spot (the common case: no request, no copy, reading continues).
// Whatever is left is written with uv_write from that same buffer, and reading from the
// source stops until that write completes. So the write queue of a stream never holds
// more than one block (high mark: one block, low mark: empty — hysteresis with no
// thrashing), a slow receiver pushes back through the kernel's TCP window to the fast
// sender, and memory per connection is bounded by 2 blocks whatever the rates.
//
// Half-close: EOF from one side becomes uv_shutdown() (FIN) on the other once that
// direction's pending write is done; the relay is finished when both directions have
// relayed their EOF. A reset or error on one side is reported once (relay_failed) so the
// owner can reset the other side too: nothing is silently truncated.
#pragma once

#include <cstddef>
#include <cstdint>

#include <uv.h>

#include "net/buffer_pool.h"
#include "socks/codec.h"

namespace tunsocks::server {

enum class RelaySide : std::uint8_t { client, target };

class RelayOwner {
 public:
  // A libuv request of the relay's was submitted / has run its callback (the session
  // counts them: it may only be destroyed when none is in flight).
  virtual void relay_retain() = 0;
  virtual void relay_release() = 0;
  // Bytes moved from `from` to the other side (counters, idle timer).
  virtual void relay_moved(RelaySide from, std::size_t bytes) = 0;
  // Both directions have relayed their EOF.
  virtual void relay_finished() = 0;
  // `side` failed (read error, reset, or a write to it failed) with libuv error `error`.
  virtual void relay_failed(RelaySide side, int error) = 0;

 protected:
  ~RelayOwner() = default;
};

class Relay {
 public:
  Relay(RelayOwner& owner, net::BufferPool& pool);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // Takes over reading from both streams (their `data` now points into the relay).
  // `first_to_target`: client bytes that arrived before the relay started (pipelined after
  // the request); they are written before anything else. `client_eof`: the client already
  // half-closed, so only its pending bytes and a FIN go to the target.
  void start(uv_stream_t* client, uv_stream_t* target, socks::Bytes first_to_target,
             bool client_eof);
  // Stops reading and reporting; requests in flight complete (with UV_ECANCELED once the
  // owner closes the handles) and only release what they hold.
  void stop();

  [[nodiscard]] bool started() const { return started_; }
  [[nodiscard]] std::uint64_t up() const { return up_.bytes; }      // client → target
  [[nodiscard]] std::uint64_t down() const { return down_.bytes; }  // target → client

 private:
  struct Direction {
    Relay* relay = nullptr;
    uv_stream_t* from = nullptr;
    uv_stream_t* to = nullptr;
    RelaySide from_side = RelaySide::client;
    RelaySide to_side = RelaySide::target;
    uv_write_t write_req{};
    uv_shutdown_t shutdown_req{};
    net::PooledBuffer held;   // the block a pending write points into
    socks::Bytes held_bytes;  // or the pipelined bytes it points into
    bool write_pending = false;
    bool eof = false;  // `from` sent EOF
    bool shutdown_sent = false;
    bool done = false;  // EOF relayed: `to` is shut down
    std::uint64_t bytes = 0;
  };

  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);

  void read(Direction& d, ssize_t nread, const uv_buf_t* buf);
  void written(Direction& d, int status);
  void shut_down(Direction& d, int status);
  // Writes [data, data+length) to d.to, first synchronously, then as a request for the rest.
  // Returns false when the direction failed (already reported).
  bool forward(Direction& d, char* data, std::size_t length, net::PooledBuffer block);
  void start_reading(Direction& d);
  void send_eof(Direction& d);
  void fail(RelaySide side, int error);
  void check_finished();

  RelayOwner& owner_;
  net::BufferPool& pool_;
  Direction up_;
  Direction down_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace tunsocks::server
