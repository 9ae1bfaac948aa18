#include "server/relay.h"

#include <utility>

#include "net/uv_handle.h"

namespace tunsocks::server {

Relay::Relay(RelayOwner& owner, net::BufferPool& pool) : owner_(owner), pool_(pool) {
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
  uv_read_stop(up_.from);
  uv_read_stop(down_.from);
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
    forward(d, data, length, std::move(block));
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

}  // namespace tunsocks::server
