#include "tunnel/dns_tcp_upstream.h"

#include <cassert>
#include <memory>
#include <utility>

#include "net/log.h"

namespace tunsocks::tunnel {
namespace {

// Answers are small; what waits for the connection is bounded so that a resolver that
// never answers cannot make us hold queries without end.
constexpr std::size_t kMaxWaiting = 256 * 1024;
constexpr std::size_t kReadBuffer = 64 * 1024;
constexpr std::uint64_t kIdleMs = 60'000;

struct Write {
  uv_write_t request{};
  DnsTcpUpstream* owner = nullptr;
  std::vector<std::uint8_t> bytes;
};

DnsTcpUpstream* owner_of(void* data) {
  return static_cast<DnsTcpUpstream*>(data);
}

void on_connect(uv_connect_t* request, int status) {
  owner_of(request->data)->on_connected(status);
}
void on_alloc_buffer(uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
  *buffer = owner_of(handle->data)->read_buffer();
}
void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
  owner_of(stream->data)->on_read(nread, buffer);
}
void on_write(uv_write_t* request, int status) {
  std::unique_ptr<Write> write(static_cast<Write*>(request->data));
  write->owner->on_write_done(status);
}
void on_timer(uv_timer_t* timer) {
  owner_of(timer->data)->on_timer();
}
void on_close(uv_handle_t* handle) {
  owner_of(handle->data)->on_handle_closed();
}

}  // namespace

DnsTcpUpstream::DnsTcpUpstream(DnsTcpUpstreamHost& host, net::Endpoint resolver)
    : host_(host), resolver_(std::move(resolver)), read_buffer_(kReadBuffer) {}

DnsTcpUpstream::~DnsTcpUpstream() {
  assert(outstanding_ == 0);
}

bool DnsTcpUpstream::send(PacketView query) {
  if (stopped_ || query.size() > 0xFFFF || waiting_.size() + 2 + query.size() > kMaxWaiting) {
    return false;
  }
  waiting_.push_back(static_cast<std::uint8_t>(query.size() >> 8));
  waiting_.push_back(static_cast<std::uint8_t>(query.size()));
  waiting_.insert(waiting_.end(), query.begin(), query.end());
  last_activity_ms_ = uv_now(host_.loop());
  if (state_ == State::idle) {
    connect();
  } else {
    flush();
  }
  return true;
}

void DnsTcpUpstream::connect() {
  const FlowSettings& settings = host_.flow_settings();
  upstream_server_ = settings.upstream;
  state_ = State::connecting;
  ++connections_;
  uv_timer_init(host_.loop(), &timer_);
  timer_.data = this;
  ++outstanding_;
  connect_request_.data = this;
  bool opened = false;
  auto connecting = connect_upstream(host_.loop(), upstream_, connect_request_, settings,
                                     *upstream_server_, on_connect, opened);
  if (opened) {
    upstream_.data = this;
    ++outstanding_;
  }
  if (!connecting) return close(connecting.error().c_str());
  ++outstanding_;
  uv_timer_start(&timer_, tunnel::on_timer, settings.connect_timeout_ms, 0);
}

void DnsTcpUpstream::on_connected(int status) {
  --outstanding_;
  if (state_ == State::closing) return on_handle_closed_check();
  if (status < 0) return close(uv_err_name(status));
  state_ = State::handshaking;
  handshake_.emplace(upstream_server_->handshake, socks::Command::connect,
                     socks_address(resolver_));
  uv_read_start(reinterpret_cast<uv_stream_t*>(&upstream_), tunnel::on_alloc_buffer,
                tunnel::on_read);
  write(handshake_->take_output());
}

void DnsTcpUpstream::on_read(ssize_t nread, const uv_buf_t* buffer) {
  if (state_ == State::closing || nread == 0) return;
  if (nread < 0)
    return close(nread == UV_EOF ? "resolver closed" : uv_err_name(static_cast<int>(nread)));
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer->base);
  PacketView input(data, static_cast<std::size_t>(nread));
  if (state_ == State::handshaking) {
    const std::size_t used = handshake_->feed(input);
    switch (handshake_->status()) {
      case ClientHandshake::Status::in_progress:
        return write(handshake_->take_output());
      case ClientHandshake::Status::failed:
        return close(handshake_->reply_text().c_str());
      case ClientHandshake::Status::succeeded:
        break;
    }
    state_ = State::ready;
    input = input.subspan(used);
    uv_timer_start(&timer_, tunnel::on_timer, kIdleMs, 0);
    flush();
  }
  last_activity_ms_ = uv_now(host_.loop());
  received_.insert(received_.end(), input.begin(), input.end());
  std::size_t offset = 0;
  while (received_.size() - offset >= 2) {
    const std::size_t length =
        static_cast<std::size_t>(received_[offset] << 8 | received_[offset + 1]);
    if (received_.size() - offset - 2 < length) break;
    host_.on_dns_tcp_answer(PacketView(received_).subspan(offset + 2, length));
    offset += 2 + length;
  }
  received_.erase(received_.begin(), received_.begin() + static_cast<std::ptrdiff_t>(offset));
}

uv_buf_t DnsTcpUpstream::read_buffer() {
  return uv_buf_init(reinterpret_cast<char*>(read_buffer_.data()),
                     static_cast<unsigned>(read_buffer_.size()));
}

void DnsTcpUpstream::flush() {
  if (state_ != State::ready || waiting_.empty()) return;
  write(std::exchange(waiting_, {}));
}

void DnsTcpUpstream::write(std::vector<std::uint8_t> bytes) {
  if (bytes.empty()) return;
  auto request = std::make_unique<Write>();
  request->owner = this;
  request->bytes = std::move(bytes);
  request->request.data = request.get();
  uv_buf_t buffer = uv_buf_init(reinterpret_cast<char*>(request->bytes.data()),
                                static_cast<unsigned>(request->bytes.size()));
  const int status = uv_write(&request->request, reinterpret_cast<uv_stream_t*>(&upstream_),
                              &buffer, 1, tunnel::on_write);
  if (status < 0) return close(uv_err_name(status));
  request.release();
  ++outstanding_;
}

void DnsTcpUpstream::on_write_done(int status) {
  --outstanding_;
  if (status < 0 && status != UV_ECANCELED && state_ != State::closing) {
    return close(uv_err_name(status));
  }
  on_handle_closed_check();
}

void DnsTcpUpstream::on_timer() {
  switch (state_) {
    case State::connecting:
    case State::handshaking:
      return close("connect timeout");
    case State::ready: {
      const std::uint64_t quiet = uv_now(host_.loop()) - last_activity_ms_;
      if (quiet >= kIdleMs) return close("idle");
      uv_timer_start(&timer_, tunnel::on_timer, kIdleMs - quiet, 0);
      return;
    }
    case State::idle:
    case State::closing:
      return;
  }
}

void DnsTcpUpstream::stop() {
  stopped_ = true;
  waiting_.clear();
  if (state_ != State::idle) close("stopping");
}

void DnsTcpUpstream::close(const char* why) {
  if (state_ == State::closing || state_ == State::idle) return;
  TS_LOG_DEBUG("dns-tcp: connection to %s via the proxy ends: %s", resolver_.to_string().c_str(),
               why);
  state_ = State::closing;
  // Queries written and not answered, or not written yet, are lost with the connection;
  // their applications retry (their IDs expire in the tunnel's map).
  waiting_.clear();
  received_.clear();
  handshake_.reset();
  auto* upstream = reinterpret_cast<uv_handle_t*>(&upstream_);
  if (upstream_.type == UV_TCP && !uv_is_closing(upstream)) uv_close(upstream, tunnel::on_close);
  auto* timer = reinterpret_cast<uv_handle_t*>(&timer_);
  if (timer_.type == UV_TIMER && !uv_is_closing(timer)) uv_close(timer, tunnel::on_close);
  on_handle_closed_check();
}

void DnsTcpUpstream::on_handle_closed() {
  --outstanding_;
  on_handle_closed_check();
}

void DnsTcpUpstream::on_handle_closed_check() {
  if (state_ != State::closing || outstanding_ != 0) return;
  state_ = State::idle;
  upstream_ = {};
  timer_ = {};
  host_.on_dns_tcp_closed();
  // Queries that came while the old connection was closing open a new one.
  if (!waiting_.empty() && !stopped_) connect();
}

}  // namespace tunsocks::tunnel
