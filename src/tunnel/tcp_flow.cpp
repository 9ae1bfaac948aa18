#include "tunnel/tcp_flow.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include <lwip/pbuf.h>
#include <lwip/tcp.h>

#include "net/log.h"
#include "net/uv_handle.h"

namespace tunsocks::tunnel {
namespace {

// Backpressure marks on lwIP's send buffer (upstream → application). Reading stops below
// the low mark and resumes above half the buffer: the gap keeps us from toggling the
// upstream's read state on every acknowledgement.
constexpr std::size_t kLowMark = TCP_SND_BUF / 8;
constexpr std::size_t kResumeMark = TCP_SND_BUF / 2;
constexpr std::size_t kQueueLimit = TCP_SND_QUEUELEN * 3 / 4;
constexpr std::size_t kMaxRead = 256 * 1024;  // the host's read buffer
// A read at least this large is sent from the buffer it was read into (the flow adopts
// it; lwIP frees it once every byte is acknowledged) instead of being copied into pbufs.
// Smaller ones are copied: an adopted buffer is held whole, so at most half of it idles.
constexpr std::size_t kReferenceAtLeast = kMaxRead / 2;
constexpr u32_t kKeepaliveIdleMs = 60'000;
constexpr u32_t kKeepaliveIntervalMs = 10'000;
constexpr u32_t kKeepaliveCount = 3;
static_assert(kLowMark > 0 && kResumeMark > kLowMark, "lwipopts: TCP_SND_BUF too small");
// tcp_write takes a u16_t length; reads are capped so one read is one call in most cases.
constexpr std::size_t kMaxTcpWrite = 0xFFFF;

// One write to the upstream: either handshake bytes it owns or an lwIP pbuf chain whose
// payloads are written in place (no copy) and acknowledged to lwIP only once written.
struct UpstreamWrite {
  uv_write_t request{};
  TcpFlow* flow = nullptr;
  pbuf* chain = nullptr;
  socks::Bytes owned;
  std::vector<uv_buf_t> buffers;
};

TcpFlow* flow_of(void* data) {
  return static_cast<TcpFlow*>(data);
}

void on_connect(uv_connect_t* request, int status) {
  flow_of(request->data)->on_connected(status);
}
void on_alloc(uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
  flow_of(handle->data)->on_alloc(buffer);
}
void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buffer) {
  flow_of(stream->data)->on_read(nread, buffer);
}
void on_write(uv_write_t* request, int status) {
  std::unique_ptr<UpstreamWrite> write(static_cast<UpstreamWrite*>(request->data));
  write->flow->on_write_done(write->chain, status);
}
void on_shutdown(uv_shutdown_t* request, int status) {
  flow_of(request->data)->on_shutdown_done(status);
}
void on_timer(uv_timer_t* timer) {
  flow_of(timer->data)->on_timer();
}
void on_close(uv_handle_t* handle) {
  flow_of(handle->data)->on_handle_closed();
}

err_t on_lwip_recv(void* arg, tcp_pcb* pcb, pbuf* chain, err_t) {
  if (flow_of(arg)->on_recv(chain)) {
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  return ERR_OK;
}
err_t on_lwip_sent(void* arg, tcp_pcb* pcb, u16_t length) {
  if (flow_of(arg)->on_sent(length)) {
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  return ERR_OK;
}
void on_lwip_err(void* arg, err_t error) {
  // The pcb is already freed here (or is about to be); the flow only forgets it.
  if (arg == nullptr) return;
  if (error == ERR_CLSD) return flow_of(arg)->on_lwip_finished();
  flow_of(arg)->on_lwip_error(error == ERR_RST);
}

// tcp_sndbuf() clamps to 16 bits (TCPWND16) even with window scaling; the marks below are
// about the real, larger buffer.
std::size_t send_room(const tcp_pcb* pcb) {
  return pcb->snd_buf;
}

// The segment size tcp_write cuts to (its mss_local: the MSS, at most half the largest
// window the application offered).
std::size_t segment_size(const tcp_pcb* pcb) {
  const std::size_t half_window = pcb->snd_wnd_max / 2;
  return half_window == 0 ? pcb->mss : std::min<std::size_t>(pcb->mss, half_window);
}

// `bytes` cut down to whole segments when it holds at least one. Each read is sent at once
// (Nagle is off), so a read of 64 KiB against a 65435-byte MSS went out as a full segment
// and a 101-byte one: twice the packets, TUN writes and wake-ups of the application.
std::size_t whole_segments(std::size_t bytes, std::size_t segment) {
  return bytes < segment ? bytes : bytes - bytes % segment;
}

void detach_callbacks(tcp_pcb* pcb) {
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);
  tcp_sent(pcb, nullptr);
  tcp_err(pcb, nullptr);
}

// What the application should see when the upstream answers a CONNECT with `reply`.
Refusal refusal_for_socks5(std::uint8_t reply) {
  switch (static_cast<socks::Socks5Reply>(reply)) {
    case socks::Socks5Reply::network_unreachable:
      return Refusal::network_unreachable;
    case socks::Socks5Reply::host_unreachable:
    case socks::Socks5Reply::ttl_expired:
      return Refusal::host_unreachable;
    default:
      return Refusal::reset;
  }
}

}  // namespace

std::expected<void, std::string> connect_upstream(uv_loop_t* loop, uv_tcp_t& handle,
                                                  uv_connect_t& request,
                                                  const FlowSettings& settings,
                                                  const Upstream& upstream,
                                                  uv_connect_cb on_connect, bool& opened) {
  opened = false;
  int status = uv_tcp_init_ex(loop, &handle, upstream.address.ss_family);
  if (status < 0) {
    // libuv sets the handle's type before socket() fails (EMFILE), and the flow and DNS
    // over TCP take "type is UV_TCP" to mean "opened, close it": closing a handle libuv
    // never registered ran a close callback nobody counted (outstanding_ < 0).
    handle = uv_tcp_t{};
    return std::unexpected(std::string("socket: ") + uv_err_name(status));
  }
  opened = true;
  uv_os_fd_t fd = -1;
  if (settings.fwmark != 0 && uv_fileno(reinterpret_cast<uv_handle_t*>(&handle), &fd) == 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_MARK, &settings.fwmark, sizeof settings.fwmark) < 0) {
    return std::unexpected(std::string("SO_MARK: ") + std::strerror(errno));
  }
  uv_tcp_nodelay(&handle, 1);
  status = uv_tcp_connect(&request, &handle, reinterpret_cast<const sockaddr*>(&upstream.address),
                          on_connect);
  if (status < 0) return std::unexpected(std::string("connect: ") + uv_err_name(status));
  return {};
}

std::string_view describe(CloseReason reason) {
  switch (reason) {
    case CloseReason::none:
      return "open";
    case CloseReason::eof:
      return "eof";
    case CloseReason::app_reset:
      return "app_reset";
    case CloseReason::upstream_reset:
      return "upstream_reset";
    case CloseReason::upstream_refused:
      return "refused";
    case CloseReason::upstream_unreachable:
      return "upstream_unreachable";
    case CloseReason::connect_timeout:
      return "connect_timeout";
    case CloseReason::handshake_failed:
      return "handshake_failed";
    case CloseReason::accept_timeout:
      return "accept_timeout";
    case CloseReason::idle_timeout:
      return "idle_timeout";
    case CloseReason::out_of_memory:
      return "out_of_memory";
    case CloseReason::shutdown:
      return "shutdown";
    case CloseReason::switched:
      return "switched";
  }
  return "unknown";
}

TcpFlow::TcpFlow(FlowHost& host, std::uint64_t id, const PacketInfo& syn, PacketView syn_packet,
                 std::optional<std::string> name)
    : host_(host),
      id_(id),
      key_(syn.flow),
      by_name_(name.has_value()),
      upstream_server_(host.flow_settings().upstream),
      syn_info_(syn),
      syn_packet_(syn_packet.begin(), syn_packet.begin() + syn.total_length),
      handshake_(upstream_server_->handshake, socks::Command::connect,
                 name ? socks::Address::name(std::move(*name), syn.flow.destination.port)
                      : socks_address(syn.flow.destination)) {
  upstream_.data = this;
  timer_.data = this;
  connect_request_.data = this;
  shutdown_request_.data = this;
}

TcpFlow::~TcpFlow() {
  assert(outstanding_ == 0 && pcb_ == nullptr);
}

void TcpFlow::start() {
  const FlowSettings& settings = host_.flow_settings();
  uv_loop_t* loop = host_.loop();
  started_ms_ = last_activity_ms_ = uv_now(loop);
  auto& counters = host_.flow_counters();
  ++counters.flows_open;
  ++counters.flows_total;

  uv_timer_init(loop, &timer_);
  ++outstanding_;
  bool opened = false;
  auto connecting = connect_upstream(loop, upstream_, connect_request_, settings, *upstream_server_,
                                     tunnel::on_connect, opened);
  if (opened) ++outstanding_;
  if (!connecting) {
    detail_ = connecting.error();
    return refuse(CloseReason::upstream_unreachable, Refusal::reset);
  }
  ++outstanding_;
  arm_timer(settings.connect_timeout_ms);
}

void TcpFlow::arm_timer(std::uint64_t ms) {
  uv_timer_start(&timer_, tunnel::on_timer, ms, 0);
}

void TcpFlow::on_connected(int status) {
  release();
  if (phase_ == Phase::closing) return;
  if (status < 0) {
    detail_ = std::string("upstream connect: ") + uv_strerror(status);
    return refuse(CloseReason::upstream_unreachable, Refusal::reset);
  }
  phase_ = Phase::handshaking;
  TS_LOG_DEBUG("flow id=%llu upstream connected", static_cast<unsigned long long>(id_));
  uv_read_start(reinterpret_cast<uv_stream_t*>(&upstream_), tunnel::on_alloc, tunnel::on_read);
  reading_ = true;
  handshake_step();
}

// Sends whatever the handshake wants to say next.
void TcpFlow::handshake_step() {
  socks::Bytes bytes = handshake_.take_output();
  if (bytes.empty()) return;
  // A handshake message fits the fresh socket's buffer: written at once, it needs no
  // request, no callback and no write watcher (see try_write_now).
  uv_buf_t whole =
      uv_buf_init(reinterpret_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size()));
  const int written = try_write_now(&whole, 1);
  if (written < 0) {
    detail_ = std::string("upstream write: ") + uv_strerror(written);
    return refuse(CloseReason::upstream_unreachable, Refusal::reset);
  }
  if (static_cast<std::size_t>(written) == bytes.size()) return;
  bytes.erase(bytes.begin(), bytes.begin() + written);
  auto write = std::make_unique<UpstreamWrite>();
  write->flow = this;
  write->owned = std::move(bytes);
  write->buffers.push_back(uv_buf_init(reinterpret_cast<char*>(write->owned.data()),
                                       static_cast<unsigned>(write->owned.size())));
  write->request.data = write.get();
  int status = uv_write(&write->request, reinterpret_cast<uv_stream_t*>(&upstream_),
                        write->buffers.data(), 1, tunnel::on_write);
  if (status < 0) {
    detail_ = std::string("upstream write: ") + uv_strerror(status);
    return refuse(CloseReason::upstream_unreachable, Refusal::reset);
  }
  write.release();
  ++outstanding_;
}

void TcpFlow::refuse(CloseReason reason, Refusal refusal) {
  if (!syn_packet_.empty()) {
    PacketBytes answer = build_refusal(syn_info_, syn_packet_, refusal);
    host_.write_packet(answer);
  }
  ++host_.flow_counters().flows_refused;
  close(reason, CloseKind::graceful);
}

void TcpFlow::on_alloc(uv_buf_t* buffer) {
  std::size_t size = kMaxRead;
  if (phase_ == Phase::relaying && pcb_ != nullptr) {
    size = whole_segments(std::min(size, send_room(pcb_)), segment_size(pcb_));
  }
  *buffer = host_.read_buffer(size);
}

void TcpFlow::on_read(ssize_t nread, const uv_buf_t* buffer) {
  if (nread == 0 || phase_ == Phase::closing) return;
  if (nread == UV_ENOBUFS) {  // no room in lwIP: on_sent restarts reading
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&upstream_));
    reading_ = false;
    return;
  }
  const bool handshaking = phase_ == Phase::handshaking;
  if (nread < 0) {
    if (nread == UV_EOF && !handshaking &&
        !net::peer_reset(reinterpret_cast<uv_stream_t*>(&upstream_))) {
      upstream_eof_ = true;
      uv_read_stop(reinterpret_cast<uv_stream_t*>(&upstream_));
      reading_ = false;
      pump_down();
      maybe_finish_gracefully(false);
      return;
    }
    detail_ = std::string("upstream read: ") + uv_err_name(static_cast<int>(nread));
    if (handshaking) return refuse(CloseReason::handshake_failed, Refusal::reset);
    close(CloseReason::upstream_reset, CloseKind::reset);
    return;
  }
  last_activity_ms_ = uv_now(host_.loop());
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer->base);
  std::size_t length = static_cast<std::size_t>(nread);

  if (handshaking) {
    const std::size_t used = handshake_.feed({data, length});
    switch (handshake_.status()) {
      case ClientHandshake::Status::in_progress:
        return handshake_step();
      case ClientHandshake::Status::failed: {
        detail_ = handshake_.detail();
        const bool rejected = handshake_.failure() == HandshakeFailure::request_rejected;
        const Refusal refusal =
            rejected && upstream_server_->handshake.version == SocksVersion::socks5
                ? refusal_for_socks5(handshake_.reply_code().value_or(1))
                : Refusal::reset;
        return refuse(rejected ? CloseReason::upstream_refused : CloseReason::handshake_failed,
                      refusal);
      }
      case ClientHandshake::Status::succeeded:
        break;
    }
    // Bytes behind the reply are the flow's first payload (a server that speaks first).
    down_pending_.assign(data + used, data + length);
    bytes_down_ += length - used;
    host_.flow_counters().bytes_down += length - used;
    // Reading goes on while the application completes its handshake with lwIP (stopping
    // and restarting would cost two epoll_ctl per flow); the first bytes that arrive wait
    // in down_pending_ for attach(), and reading stops then, as it does in the relay.
    if (!down_pending_.empty()) stop_reading();
    phase_ = Phase::accepting;
    TS_LOG_DEBUG("flow id=%llu upstream said yes; answering the SYN",
                 static_cast<unsigned long long>(id_));
    // Now lwIP may answer the application's SYN; attach() follows when the handshake with
    // the application completes.
    PacketBytes syn = std::move(syn_packet_);
    syn_packet_.clear();
    host_.inject_syn(syn, key_);
    if (phase_ == Phase::accepting) arm_timer(host_.flow_settings().accept_timeout_ms);
    return;
  }

  bytes_down_ += length;
  host_.flow_counters().bytes_down += length;
  if (pcb_ == nullptr) {  // accepting: no connection to the application yet
    down_pending_.insert(down_pending_.end(), data, data + length);
    stop_reading();
    return;
  }
  // Holds an adopted buffer until the rest of it is copied below (lwIP's segments keep
  // references of their own to what they took).
  PayloadBlockRef block;
  std::size_t offset = 0;
  if (down_pending_.empty()) {
    if (length >= kReferenceAtLeast) block = host_.adopt_read_buffer(*buffer);
    offset = write_to_app(data, length, block.get());
  }
  // What lwIP could not take waits here; reading stops until it drains (bounded by one read).
  down_pending_.insert(down_pending_.end(), data + offset, data + length);
  tcp_output(pcb_);
  update_reading();
}

void TcpFlow::pump_down() {
  if (pcb_ == nullptr) return;
  const std::size_t offset = write_to_app(down_pending_.data(), down_pending_.size());
  down_pending_.erase(down_pending_.begin(), down_pending_.begin() + static_cast<long>(offset));
  if (down_pending_.empty()) down_pending_.shrink_to_fit();
  if (down_pending_.empty() && upstream_eof_ && !app_fin_sent_) {
    // FIN after everything queued: tcp_shutdown only queues it behind the data.
    if (tcp_shutdown(pcb_, 0, 1) == ERR_OK) app_fin_sent_ = true;
  }
  tcp_output(pcb_);
}

std::size_t TcpFlow::write_to_app(const std::uint8_t* data, std::size_t length,
                                  tunsocks_payload_block* block) {
  // Calls of whole segments (below tcp_write's 16-bit length): each fills its segments
  // exactly instead of leaving a short one for the next call to top up.
  const std::size_t call_limit = whole_segments(kMaxTcpWrite, segment_size(pcb_));
  const u8_t flags = block != nullptr ? 0 : TCP_WRITE_FLAG_COPY;
  const ReferencingWrites referencing(block);
  std::size_t offset = 0;
  while (offset < length) {
    const std::size_t chunk = std::min({length - offset, call_limit, send_room(pcb_)});
    if (chunk == 0 || tcp_write(pcb_, data + offset, static_cast<u16_t>(chunk), flags) != ERR_OK) {
      break;
    }
    offset += chunk;
  }
  app_out_ += offset;
  host_.flow_counters().app_out += offset;
  return offset;
}

void TcpFlow::stop_reading() {
  if (reading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&upstream_));
  reading_ = false;
}

void TcpFlow::update_reading() {
  if (phase_ != Phase::relaying || upstream_eof_ || pcb_ == nullptr) return;
  const std::size_t room = send_room(pcb_);
  const bool queue_full = tcp_sndqueuelen(pcb_) >= kQueueLimit;
  auto* stream = reinterpret_cast<uv_stream_t*>(&upstream_);
  if (reading_) {
    if (!down_pending_.empty() || room < kLowMark || queue_full) {
      uv_read_stop(stream);
      reading_ = false;
    }
  } else if (down_pending_.empty() && room >= kResumeMark && !queue_full) {
    if (uv_read_start(stream, tunnel::on_alloc, tunnel::on_read) == 0) reading_ = true;
  }
}

bool TcpFlow::attach(tcp_pcb* pcb) {
  if (phase_ != Phase::accepting) return false;
  pcb_ = pcb;
  tcp_arg(pcb, this);
  tcp_recv(pcb, on_lwip_recv);
  tcp_sent(pcb, on_lwip_sent);
  tcp_err(pcb, on_lwip_err);
  // We forward whatever the upstream gives at once; Nagle would only add latency.
  tcp_nagle_disable(pcb);
  // An application that vanished while its RST was lost (a full TUN queue drops it, and
  // nobody resends an RST) would hold the flow until the idle timeout; keepalive probes
  // are answered with a fresh RST by the application's kernel.
  ip_set_option(pcb, SOF_KEEPALIVE);
  pcb->keep_idle = kKeepaliveIdleMs;
  pcb->keep_intvl = kKeepaliveIntervalMs;
  pcb->keep_cnt = kKeepaliveCount;
  phase_ = Phase::relaying;
  TS_LOG_DEBUG("flow id=%llu relaying", static_cast<unsigned long long>(id_));
  last_activity_ms_ = uv_now(host_.loop());
  const std::uint64_t idle = host_.flow_settings().idle_timeout_ms;
  if (idle > 0) {
    arm_timer(idle);
  } else {
    uv_timer_stop(&timer_);
  }
  pump_down();
  update_reading();
  return true;
}

bool TcpFlow::on_recv(pbuf* chain) {
  if (phase_ == Phase::closing) {
    if (chain != nullptr) pbuf_free(chain);
    return false;
  }
  last_activity_ms_ = uv_now(host_.loop());
  auto* stream = reinterpret_cast<uv_stream_t*>(&upstream_);
  if (chain == nullptr) {
    app_eof_ = true;
    // libuv sends the FIN only after every queued write: nothing the app sent is cut off.
    if (uv_shutdown(&shutdown_request_, stream, tunnel::on_shutdown) < 0) {
      return close(CloseReason::upstream_reset, CloseKind::reset, true);
    }
    ++outstanding_;
    return false;
  }
  app_in_ += chain->tot_len;
  host_.flow_counters().app_in += chain->tot_len;
  auto write = std::make_unique<UpstreamWrite>();
  write->flow = this;
  write->chain = chain;
  for (pbuf* part = chain; part != nullptr; part = part->next) {
    if (part->len == 0) continue;
    write->buffers.push_back(uv_buf_init(static_cast<char*>(part->payload), part->len));
  }
  const int written =
      try_write_now(write->buffers.data(), static_cast<unsigned>(write->buffers.size()));
  if (written < 0) {
    pbuf_free(chain);
    detail_ = std::string("upstream write: ") + uv_strerror(written);
    return close(CloseReason::upstream_reset, CloseKind::reset, true);
  }
  if (static_cast<std::size_t>(written) == chain->tot_len) {
    // All taken by the kernel: acknowledged to lwIP now, as on_write_done would.
    upstream_written(chain->tot_len);
    pbuf_free(chain);
    return false;
  }
  // The rest waits for the socket; the chain is acknowledged whole when it is written.
  skip_written(write->buffers, static_cast<std::size_t>(written));
  write->request.data = write.get();
  const int status = uv_write(&write->request, stream, write->buffers.data(),
                              static_cast<unsigned>(write->buffers.size()), tunnel::on_write);
  if (status < 0) {
    pbuf_free(chain);
    detail_ = std::string("upstream write: ") + uv_strerror(status);
    return close(CloseReason::upstream_reset, CloseKind::reset, true);
  }
  write.release();
  ++outstanding_;
  ++writes_in_flight_;
  return false;
}

// uv_write always arms the socket's write watcher and calls back on a later loop turn,
// which costs an epoll_ctl and a callback per write even when the kernel takes everything
// at once, as it does for nearly every small write (a request, a handshake message).
// Returns the bytes written now (0 if the socket is full or earlier writes still queue),
// or a libuv error.
int TcpFlow::try_write_now(const uv_buf_t* buffers, unsigned count) {
  if (writes_in_flight_ != 0) return 0;  // keep the order: uv_try_write would refuse anyway
  const int written = uv_try_write(reinterpret_cast<uv_stream_t*>(&upstream_), buffers, count);
  return written == UV_EAGAIN ? 0 : written;
}

// Drops the first `count` bytes from `buffers` (all written by try_write_now).
void TcpFlow::skip_written(std::vector<uv_buf_t>& buffers, std::size_t count) {
  auto first = buffers.begin();
  while (count > 0 && count >= first->len) {
    count -= first->len;
    ++first;
  }
  buffers.erase(buffers.begin(), first);
  if (count > 0) {
    buffers.front().base += count;
    buffers.front().len -= count;
  }
}

void TcpFlow::upstream_written(std::size_t length) {
  bytes_up_ += length;
  host_.flow_counters().bytes_up += length;
  last_activity_ms_ = uv_now(host_.loop());
  // Only now does the application's window open again: a slow upstream throttles the
  // application instead of growing our memory.
  if (pcb_ != nullptr) tcp_recved(pcb_, static_cast<u16_t>(length));
}

void TcpFlow::on_write_done(pbuf* chain, int status) {
  if (chain != nullptr) {
    --writes_in_flight_;
    if (status == 0) upstream_written(chain->tot_len);
    pbuf_free(chain);
  }
  if (status < 0 && status != UV_ECANCELED && phase_ != Phase::closing) {
    detail_ = std::string("upstream write: ") + uv_err_name(status);
    if (phase_ == Phase::handshaking) {
      refuse(CloseReason::handshake_failed, Refusal::reset);
    } else {
      close(CloseReason::upstream_reset, CloseKind::reset);
    }
  }
  release();
}

void TcpFlow::on_shutdown_done(int status) {
  if (phase_ != Phase::closing) {
    if (status < 0) {
      detail_ = std::string("upstream shutdown: ") + uv_err_name(status);
      close(CloseReason::upstream_reset, CloseKind::reset);
    } else {
      upstream_shutdown_ = true;
      maybe_finish_gracefully(false);
    }
  }
  release();
}

bool TcpFlow::on_sent(std::uint16_t) {
  last_activity_ms_ = uv_now(host_.loop());
  pump_down();
  update_reading();
  if (app_eof_ && upstream_shutdown_ && upstream_eof_ && app_fin_sent_) {
    return close(CloseReason::eof, CloseKind::graceful, true);
  }
  return false;
}

void TcpFlow::maybe_finish_gracefully(bool in_lwip) {
  if (app_eof_ && upstream_shutdown_ && upstream_eof_ && app_fin_sent_) {
    const bool abort = close(CloseReason::eof, CloseKind::graceful, in_lwip);
    assert(!abort || !in_lwip);
    (void)abort;
  }
}

// lwIP let go of the application's connection after both FINs were acknowledged (LAST_ACK
// done, or TIME_WAIT dropped by the stack): that side ended cleanly, and the flow ends
// when the upstream's side has too.
void TcpFlow::on_lwip_finished() {
  pcb_ = nullptr;
  maybe_finish_gracefully(false);
}

void TcpFlow::on_lwip_error(bool reset) {
  pcb_ = nullptr;
  close(reset ? CloseReason::app_reset : CloseReason::out_of_memory, CloseKind::reset);
}

void TcpFlow::on_timer() {
  switch (phase_) {
    case Phase::dialing:
    case Phase::handshaking:
      detail_ =
          "no answer within " + std::to_string(host_.flow_settings().connect_timeout_ms) + " ms";
      return refuse(CloseReason::connect_timeout, Refusal::reset);
    case Phase::accepting:
      close(CloseReason::accept_timeout, CloseKind::reset);
      return;
    case Phase::relaying: {
      const std::uint64_t idle = host_.flow_settings().idle_timeout_ms;
      const std::uint64_t quiet = uv_now(host_.loop()) - last_activity_ms_;
      // Activity only stamps a time; the timer re-arms itself here, once per idle period.
      if (quiet >= idle) {
        close(CloseReason::idle_timeout, CloseKind::reset);
      } else {
        arm_timer(idle - quiet);
      }
      return;
    }
    case Phase::closing:
      return;
  }
}

void TcpFlow::stop(CloseReason reason) {
  if (phase_ == Phase::dialing || phase_ == Phase::handshaking) {
    return refuse(reason, Refusal::reset);
  }
  close(reason, CloseKind::reset);
}

bool TcpFlow::close(CloseReason reason, CloseKind kind, bool in_lwip) {
  if (phase_ == Phase::closing) return false;
  phase_ = Phase::closing;
  close_reason_ = reason;
  --host_.flow_counters().flows_open;
  syn_packet_.clear();
  syn_packet_.shrink_to_fit();

  bool abort_in_trampoline = false;
  if (pcb_ != nullptr) {
    tcp_pcb* pcb = std::exchange(pcb_, nullptr);
    detach_callbacks(pcb);
    bool abort = kind == CloseKind::reset;
    // A graceful close still sends what is queued, then FIN; if lwIP cannot even queue
    // the FIN, a reset is the honest answer.
    if (!abort && tcp_close(pcb) != ERR_OK) abort = true;
    if (abort) {
      if (in_lwip) {
        abort_in_trampoline = true;
      } else {
        tcp_abort(pcb);
      }
    }
  }

  auto* handle = reinterpret_cast<uv_handle_t*>(&upstream_);
  if (upstream_.type == UV_TCP && !uv_is_closing(handle)) {
    if (reading_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&upstream_));
    reading_ = false;
    // A reset on one side becomes a reset on the other.
    if (kind == CloseKind::reset) {
      net::close_with_reset(&upstream_, tunnel::on_close);
    } else {
      uv_close(handle, tunnel::on_close);
    }
  }
  auto* timer = reinterpret_cast<uv_handle_t*>(&timer_);
  if (timer_.type == UV_TIMER && !uv_is_closing(timer)) uv_close(timer, tunnel::on_close);
  return abort_in_trampoline;
}

void TcpFlow::on_handle_closed() {
  release();
}

void TcpFlow::release(int count) {
  outstanding_ -= count;
  assert(outstanding_ >= 0);
  if (outstanding_ == 0 && phase_ == Phase::closing) host_.flow_finished(*this);
}

}  // namespace tunsocks::tunnel
