// The TCP relay between a client and its destination (CONNECT) or peer (BIND).
//
// Two engines, one relay. Every session starts buffered; a session that turns out to be
// a bulk transfer moves to splice(2) and stays there.
//
// Buffered (libuv streams): each direction holds at most one read buffer (64 KiB from the
// loop's pool) in flight. A read is first written with uv_try_write; what the kernel takes
// at once frees the buffer on the spot (the common case: no request, no copy, reading
// continues). Whatever is left is written with uv_write from that same buffer, and reading
// from the source stops until that write completes. So the write queue of a stream never
// holds more than one block (high mark: one block, low mark: empty — hysteresis with no
// thrashing), a slow receiver pushes back through the kernel's TCP window to the fast
// sender, and memory per connection is bounded by 2 blocks whatever the rates.
//
// Spliced: once kSpliceAfter bytes have moved and nothing is pending either way, each
// direction gets a pipe and bytes go socket → pipe → socket inside the kernel
// (splice(2)): no copy through user space, which on loopback more than halves socksd's
// CPU per relayed byte. The sockets are then watched with uv_poll. The same backpressure
// rule holds: a direction reads from its source only while its pipe is empty, so at most
// one pipe's worth (up to 1 MiB of referenced kernel pages) is in flight per direction and
// a slow receiver stops the reads. Pipes cost 4 descriptors per session, which is why
// short sessions (the common case) never get them; when pipes are not available (EMFILE,
// the per-user pipe quota, or descriptor numbers past 3/4 of RLIMIT_NOFILE, which are kept
// for connections), the session simply stays buffered.
//
// The end of a direction (FIN) is sent with shutdown(2) as soon as nothing is queued for
// the receiver, not through uv_shutdown, which waits a loop turn for a writable event.
//
// Half-close: EOF from one side becomes a FIN on the other once that direction's pending
// bytes are written; the relay is finished when both directions have relayed their EOF.
// A reset or error on one side is reported once (relay_failed) so the owner can reset the
// other side too: nothing is silently truncated.
#pragma once

#include <cstddef>
#include <cstdint>

#include <uv.h>

#include "net/buffer_pool.h"
#include "net/uv_handle.h"
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
  // The relay moved to the splice(2) engine (a debug log line; tests look for it).
  virtual void relay_spliced() = 0;
  // Both directions have relayed their EOF.
  virtual void relay_finished() = 0;
  // `side` failed (read error, reset, or a write to it failed) with libuv error `error`.
  virtual void relay_failed(RelaySide side, int error) = 0;

 protected:
  ~RelayOwner() = default;
};

class Relay {
 public:
  // Bytes a session relays (both ways) before it moves to splice(2); sessions shorter than
  // this never pay for pipes.
  static constexpr std::uint64_t kSpliceAfter = 256 * 1024;

  // The threshold a server uses: kSpliceAfter, unless the environment variable
  // SOCKSD_SPLICE_AFTER says otherwise (a byte count, 0 = splice at once, "off" = never).
  // A diagnostic knob: the e2e tests run the splice engine through every edge case with
  // 0, and benchmarks compare both engines with one binary.
  [[nodiscard]] static std::uint64_t configured_splice_after();

  // `splice_after`: kSpliceAfter, or UINT64_MAX to stay buffered (tests pick other values).
  Relay(RelayOwner& owner, net::BufferPool& pool, std::uint64_t splice_after = kSpliceAfter);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  ~Relay();

  // Takes over reading from both streams (their `data` now points into the relay).
  // `first_to_target`: client bytes that arrived before the relay started (pipelined after
  // the request); they are written before anything else. `client_eof`: the client already
  // half-closed, so only its pending bytes and a FIN go to the target.
  void start(uv_stream_t* client, uv_stream_t* target, socks::Bytes first_to_target,
             bool client_eof);
  // Stops reading and reporting; requests in flight complete (with UV_ECANCELED once the
  // owner closes the handles) and only release what they hold. Closes the pipes and the
  // poll handles of the spliced engine (their close callbacks release the owner). Must
  // run before the owner closes the streams.
  void stop();

  [[nodiscard]] bool started() const { return started_; }
  [[nodiscard]] bool spliced() const { return spliced_; }
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
    // Spliced engine.
    int pipe_read = -1;
    int pipe_write = -1;
    std::size_t in_pipe = 0;   // bytes spliced in and not yet out
    bool wants_read = false;   // waiting for `from` to become readable
    bool wants_write = false;  // waiting for `to` to become writable
  };

  // One socket of the spliced engine: the poll handle that watches it.
  struct Port {
    Relay* relay = nullptr;
    RelaySide side = RelaySide::client;
    int fd = -1;
    int events = 0;  // what the poll handle watches now
    net::UvHandle<uv_poll_t> poll;
  };

  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf);
  static void on_write(uv_write_t* req, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_poll(uv_poll_t* handle, int status, int events);
  static void on_poll_closed(void* relay);

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

  // Spliced engine.
  void maybe_splice();
  bool open_pipes();
  void close_pipes();
  void polled(Port& port, int status, int events);
  void pump(Direction& d);
  void update_polls();
  Port& port(RelaySide side) { return side == RelaySide::client ? client_port_ : target_port_; }

  RelayOwner& owner_;
  net::BufferPool& pool_;
  const std::uint64_t splice_after_;
  Direction up_;
  Direction down_;
  Port client_port_;
  Port target_port_;
  bool started_ = false;
  bool stopped_ = false;
  bool spliced_ = false;
  bool splice_unavailable_ = false;  // pipes could not be had: stay buffered
  std::size_t pipe_bytes_ = 0;       // capacity of each pipe
};

}  // namespace tunsocks::server
