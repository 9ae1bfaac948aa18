#include "server/relay.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <limits>
#include <string_view>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <utility>

#include "net/uv_handle.h"

namespace tunsocks::server {
namespace {

// A pipe smaller than this (the per-user pipe quota shrinks new pipes to 2 pages) would
// make splicing slower than copying: the session stays buffered instead.
constexpr int kMinPipeBytes = 64 * 1024;
// What a session asks for: the largest an unprivileged process gets by default
// (/proc/sys/fs/pipe-max-size). One splice then takes what the socket holds, up to 1 MiB,
// instead of 64 KiB: measured on loopback, 0.2 instead of 0.3 CPU seconds per GB relayed.
// It bounds the bytes a direction has in flight (kernel pages, referenced, not copied).
constexpr int kPipeBytes = 1024 * 1024;
// At most this many splice rounds (one pipe's worth each) per direction per wake-up, so
// one bulk session cannot starve the others on the loop; level-triggered polling brings
// it back on the next turn.
constexpr int kPumpRounds = 4;

// The pending socket error (consumed), as a libuv error, or `fallback` when there is none.
int socket_error(int fd, int fallback) {
  int error = 0;
  socklen_t length = sizeof error;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error != 0) return -error;
  return fallback;
}

// Pipes are a speed-up, connections are the service: a pipe may only take a descriptor
// number below three quarters of the limit, so bulk sessions cannot use up the
// descriptors that new connections need (they would be refused with EMFILE).
bool descriptors_to_spare(int highest_fd) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return true;
  return static_cast<rlim_t>(highest_fd) < limit.rlim_cur / 4 * 3;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

Relay::Relay(RelayOwner& owner, net::BufferPool& pool, std::uint64_t splice_after)
    : owner_(owner), pool_(pool), splice_after_(splice_after) {
  up_.relay = this;
  down_.relay = this;
  up_.from_side = RelaySide::client;
  up_.to_side = RelaySide::target;
  down_.from_side = RelaySide::target;
  down_.to_side = RelaySide::client;
  up_.write_req.data = &up_;
  up_.shutdown_req.data = &up_;
  down_.write_req.data = &down_;
  down_.shutdown_req.data = &down_;
  client_port_.relay = this;
  client_port_.side = RelaySide::client;
  target_port_.relay = this;
  target_port_.side = RelaySide::target;
}

std::uint64_t Relay::configured_splice_after() {
  static const std::uint64_t value = [] {
    const char* text = std::getenv("SOCKSD_SPLICE_AFTER");
    if (text == nullptr || *text == '\0') return kSpliceAfter;
    if (std::string_view(text) == "off") return std::numeric_limits<std::uint64_t>::max();
    char* end = nullptr;
    unsigned long long n = std::strtoull(text, &end, 10);
    return *end == '\0' ? static_cast<std::uint64_t>(n) : kSpliceAfter;
  }();
  return value;
}

Relay::~Relay() {
  close_pipes();
}

void Relay::start(uv_stream_t* client, uv_stream_t* target, socks::Bytes first_to_target,
                  bool client_eof) {
  started_ = true;
  up_.from = client;
  up_.to = target;
  down_.from = target;
  down_.to = client;
  client->data = &up_;
  target->data = &down_;
  up_.eof = client_eof;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(client), &fd) == 0) client_port_.fd = fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(target), &fd) == 0) target_port_.fd = fd;
  if (client_port_.fd < 0 || target_port_.fd < 0) splice_unavailable_ = true;

  start_reading(down_);
  if (stopped_) return;
  if (!first_to_target.empty()) {
    up_.held_bytes = std::move(first_to_target);
    auto* data = reinterpret_cast<char*>(up_.held_bytes.data());
    std::size_t length = up_.held_bytes.size();
    up_.bytes += length;
    owner_.relay_moved(RelaySide::client, length);
    if (!forward(up_, data, length, {})) return;
    if (!up_.write_pending) up_.held_bytes = {};
  }
  if (up_.write_pending) return;  // reading (or the FIN) resumes when the write completes
  if (up_.eof) {
    send_eof(up_);
  } else {
    start_reading(up_);
  }
}

void Relay::stop() {
  if (!started_) return;
  stopped_ = true;
  if (spliced_) {
    // Before the owner closes the streams: uv_close on a poll handle takes its descriptor
    // out of the loop's epoll set, which must happen while the descriptor still exists.
    client_port_.poll.close(&Relay::on_poll_closed, this);
    target_port_.poll.close(&Relay::on_poll_closed, this);
    close_pipes();
  } else {
    uv_read_stop(up_.from);
    uv_read_stop(down_.from);
  }
}

void Relay::on_alloc(uv_handle_t* handle, std::size_t /*suggested*/, uv_buf_t* buf) {
  auto* d = static_cast<Direction*>(handle->data);
  net::BufferPool& pool = d->relay->pool_;
  buf->base = pool.acquire();
  buf->len = pool.block_size();
}

void Relay::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  auto* d = static_cast<Direction*>(stream->data);
  d->relay->read(*d, nread, buf);
}

void Relay::on_write(uv_write_t* req, int status) {
  auto* d = static_cast<Direction*>(req->data);
  d->relay->written(*d, status);
}

void Relay::on_shutdown(uv_shutdown_t* req, int status) {
  auto* d = static_cast<Direction*>(req->data);
  d->relay->shut_down(*d, status);
}

void Relay::read(Direction& d, ssize_t nread, const uv_buf_t* buf) {
  net::PooledBuffer block(pool_, buf->base);  // back to the pool unless a write keeps it
  if (stopped_) return;
  if (nread > 0) {
    auto length = static_cast<std::size_t>(nread);
    d.bytes += length;
    owner_.relay_moved(d.from_side, length);
    char* data = block.data();
    if (forward(d, data, length, std::move(block)) && !d.write_pending) maybe_splice();
    return;
  }
  if (nread == 0) return;  // EAGAIN: nothing this time, not EOF
  // libuv may report a reset as EOF (net::peer_reset); a reset must reach the other side
  // as a reset, or a truncated stream would look complete.
  if (nread == UV_EOF && !net::peer_reset(d.from)) {
    d.eof = true;
    if (!d.write_pending) send_eof(d);
    return;
  }
  fail(d.from_side, static_cast<int>(nread));
}

bool Relay::forward(Direction& d, char* data, std::size_t length, net::PooledBuffer block) {
  uv_buf_t buf = uv_buf_init(data, static_cast<unsigned int>(length));
  int n = uv_try_write(d.to, &buf, 1);
  if (n >= 0 && static_cast<std::size_t>(n) == length) return true;
  if (n < 0 && n != UV_EAGAIN) {
    fail(d.to_side, n);
    return false;
  }
  std::size_t sent = n > 0 ? static_cast<std::size_t>(n) : 0;
  buf = uv_buf_init(data + sent, static_cast<unsigned int>(length - sent));
  int rc = uv_write(&d.write_req, d.to, &buf, 1, &Relay::on_write);
  if (rc < 0) {
    fail(d.to_side, rc);
    return false;
  }
  d.held = std::move(block);
  d.write_pending = true;
  owner_.relay_retain();
  // Backpressure: nothing more is read from this side until the receiver took this block.
  uv_read_stop(d.from);
  return true;
}

void Relay::written(Direction& d, int status) {
  d.write_pending = false;
  d.held.reset();
  d.held_bytes = {};
  if (!stopped_) {
    if (status < 0) {
      fail(d.to_side, status);
    } else if (d.eof) {
      send_eof(d);
    } else {
      start_reading(d);
    }
  }
  owner_.relay_release();  // last: the owner may be waiting for this to go away
}

void Relay::start_reading(Direction& d) {
  int rc = uv_read_start(d.from, &Relay::on_alloc, &Relay::on_read);
  if (rc < 0 && rc != UV_EALREADY) fail(d.from_side, rc);
}

void Relay::send_eof(Direction& d) {
  if (d.shutdown_sent) return;
  d.shutdown_sent = true;
  const int to_fd = port(d.to_side).fd;
  if (spliced_ || (to_fd >= 0 && uv_stream_get_write_queue_size(d.to) == 0)) {
    // Nothing is queued for `to` (spliced: the pipe is empty, pump only gets here then;
    // buffered: no write of ours or of the session is pending), so the FIN goes now.
    // uv_shutdown would wait for a writable event first: one more loop turn before the
    // receiver sees its EOF, on every session (and two epoll_ctl calls).
    // A failure means the receiver is gone; its own side reports that if it matters.
    ::shutdown(to_fd, SHUT_WR);
    d.done = true;
    check_finished();
    return;
  }
  int rc = uv_shutdown(&d.shutdown_req, d.to, &Relay::on_shutdown);
  if (rc < 0) {
    // The other side is already gone (ENOTCONN); its own read reports that if it matters.
    d.done = true;
    check_finished();
    return;
  }
  owner_.relay_retain();
}

void Relay::shut_down(Direction& d, int /*status*/) {
  // A failed shutdown means the receiver vanished; the read on that side reports it.
  d.done = true;
  if (!stopped_) check_finished();
  owner_.relay_release();
}

void Relay::check_finished() {
  if (stopped_ || !up_.done || !down_.done) return;
  stopped_ = true;
  owner_.relay_finished();
}

void Relay::fail(RelaySide side, int error) {
  if (stopped_) return;
  stopped_ = true;
  owner_.relay_failed(side, error);
}

// ---------------------------------------------------------------------------------------
// Spliced engine

void Relay::maybe_splice() {
  if (spliced_ || splice_unavailable_ || stopped_) return;
  if (up_.bytes + down_.bytes < splice_after_) return;
  // Only at a quiet point: no libuv write or shutdown may be pending on either stream,
  // since from now on the streams' own watchers stay idle.
  if (up_.write_pending || down_.write_pending || up_.eof || down_.eof || up_.shutdown_sent ||
      down_.shutdown_sent) {
    return;
  }
  if (!open_pipes()) {
    splice_unavailable_ = true;
    return;
  }
  // A stream that is not reading and not writing has no watcher in the loop, so a poll
  // handle may take its descriptor over (uv_poll_init refuses a watched one with EEXIST).
  uv_read_stop(up_.from);
  uv_read_stop(down_.from);
  uv_loop_t* loop = up_.from->loop;
  for (Port* p : {&client_port_, &target_port_}) {
    int rc = p->poll.init([&](uv_poll_t* h) { return uv_poll_init_socket(loop, h, p->fd); });
    if (rc < 0) {
      client_port_.poll.close(&Relay::on_poll_closed, this);
      target_port_.poll.close(&Relay::on_poll_closed, this);
      close_pipes();
      splice_unavailable_ = true;
      start_reading(up_);
      if (!stopped_) start_reading(down_);
      return;
    }
    owner_.relay_retain();
    p->poll.get()->data = p;
  }
  spliced_ = true;
  owner_.relay_spliced();
  up_.wants_read = true;
  down_.wants_read = true;
  update_polls();
}

bool Relay::open_pipes() {
  for (Direction* d : {&up_, &down_}) {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
      close_pipes();
      return false;
    }
    d->pipe_read = fds[0];
    d->pipe_write = fds[1];
    if (!descriptors_to_spare(fds[1])) {
      close_pipes();
      return false;
    }
    // Best effort: the quota may refuse (EPERM), and then the default size serves.
    fcntl(d->pipe_write, F_SETPIPE_SZ, kPipeBytes);
    int size = fcntl(d->pipe_write, F_GETPIPE_SZ);
    if (size < kMinPipeBytes) {
      close_pipes();
      return false;
    }
    // One length for both directions: the smaller pipe's (the quota may size them apart).
    auto bytes = static_cast<std::size_t>(size);
    pipe_bytes_ = d == &up_ ? bytes : std::min(pipe_bytes_, bytes);
  }
  return true;
}

void Relay::close_pipes() {
  for (Direction* d : {&up_, &down_}) {
    close_fd(d->pipe_read);
    close_fd(d->pipe_write);
    d->in_pipe = 0;
  }
}

void Relay::on_poll(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<Port*>(handle->data);
  p->relay->polled(*p, status, events);
}

void Relay::on_poll_closed(void* relay) {
  static_cast<Relay*>(relay)->owner_.relay_release();
}

void Relay::polled(Port& p, int status, int events) {
  if (stopped_) return;
  if (status < 0) {
    // libuv reports POLLERR as UV_EBADF; the socket's pending error says what happened
    // (a reset must be relayed as a reset).
    fail(p.side, socket_error(p.fd, status));
    return;
  }
  Direction& into = p.side == RelaySide::client ? down_ : up_;    // writes to this socket
  Direction& out_of = p.side == RelaySide::client ? up_ : down_;  // reads from it
  if ((events & UV_WRITABLE) != 0) pump(into);
  if (stopped_) return;
  if ((events & UV_READABLE) != 0) pump(out_of);
}

void Relay::pump(Direction& d) {
  if (d.done) return;
  const int from = port(d.from_side).fd;
  const int to = port(d.to_side).fd;
  d.wants_read = false;
  d.wants_write = false;
  int round = 0;
  for (; round < kPumpRounds; ++round) {
    if (d.in_pipe > 0) {
      ssize_t n =
          ::splice(d.pipe_read, nullptr, to, nullptr, d.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        d.in_pipe -= static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        d.wants_write = true;  // and no reading from `from` until the pipe drained
        break;
      }
      fail(d.to_side, n < 0 ? -errno : UV_EPIPE);
      return;
    }
    if (d.eof) {
      send_eof(d);
      break;
    }
    // The pipe is empty here, so EAGAIN can only mean "nothing to read" (a full pipe
    // would also say EAGAIN, which is why a direction never reads into a non-empty one).
    ssize_t n = ::splice(from, nullptr, d.pipe_write, nullptr, pipe_bytes_,
                         SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      auto length = static_cast<std::size_t>(n);
      d.in_pipe = length;
      d.bytes += length;
      owner_.relay_moved(d.from_side, length);
      continue;
    }
    if (n == 0) {
      // As in the buffered engine: after a FIN an RST leaves only the pending socket error.
      int error = socket_error(from, 0);
      if (error != 0) {
        fail(d.from_side, error);
        return;
      }
      d.eof = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      d.wants_read = true;
      break;
    }
    fail(d.from_side, -errno);
    return;
  }
  if (round == kPumpRounds) {
    d.wants_read = d.in_pipe == 0;
    d.wants_write = d.in_pipe > 0;
  }
  if (!stopped_) update_polls();
}

void Relay::update_polls() {
  for (Port* p : {&client_port_, &target_port_}) {
    const Direction& out_of = p->side == RelaySide::client ? up_ : down_;
    const Direction& into = p->side == RelaySide::client ? down_ : up_;
    int events = (out_of.wants_read ? UV_READABLE : 0) | (into.wants_write ? UV_WRITABLE : 0);
    if (events == p->events) continue;  // uv_poll_start costs two epoll_ctl calls
    p->events = events;
    int rc = events != 0 ? uv_poll_start(p->poll.get(), events, &Relay::on_poll)
                         : uv_poll_stop(p->poll.get());
    if (rc < 0) {
      fail(p->side, rc);
      return;
    }
  }
}

}  // namespace tunsocks::server
