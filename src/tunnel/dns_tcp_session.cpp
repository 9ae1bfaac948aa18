#include "tunnel/dns_tcp_session.h"

#include <cassert>
#include <utility>

#include <lwip/pbuf.h>
#include <lwip/tcp.h>

namespace tunsocks::tunnel {
namespace {

// A client that says nothing for this long is gone (resolvers give up within seconds).
constexpr std::uint64_t kIdleMs = 10'000;
// One message: 2-byte length + at most 65535 bytes; more pending than that is not DNS.
constexpr std::size_t kMaxMessage = 0xFFFF;

DnsTcpSession* session_of(void* data) {
  return static_cast<DnsTcpSession*>(data);
}

err_t on_lwip_recv(void* arg, tcp_pcb* pcb, pbuf* chain, err_t) {
  if (session_of(arg)->on_recv(chain)) {
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  return ERR_OK;
}
void on_lwip_err(void* arg, err_t) {
  // The pcb is already freed here; the session only forgets it.
  if (arg != nullptr) session_of(arg)->on_lwip_error();
}
void on_timer(uv_timer_t* timer) {
  session_of(timer->data)->on_timer();
}
void on_close(uv_handle_t* handle) {
  session_of(handle->data)->on_timer_closed();
}

void detach_callbacks(tcp_pcb* pcb) {
  tcp_arg(pcb, nullptr);
  tcp_recv(pcb, nullptr);
  tcp_err(pcb, nullptr);
}

}  // namespace

DnsTcpSession::DnsTcpSession(DnsTcpHost& host, const FlowKey& key) : host_(host), key_(key) {
  timer_.data = this;
}

DnsTcpSession::~DnsTcpSession() {
  assert(pcb_ == nullptr && !timer_open_);
}

void DnsTcpSession::start() {
  uv_timer_init(host_.loop(), &timer_);
  timer_open_ = true;
  uv_timer_start(&timer_, tunnel::on_timer, kIdleMs, 0);
}

bool DnsTcpSession::attach(tcp_pcb* pcb) {
  if (closing_) return false;
  pcb_ = pcb;
  tcp_arg(pcb, this);
  tcp_recv(pcb, on_lwip_recv);
  tcp_err(pcb, on_lwip_err);
  return true;
}

bool DnsTcpSession::on_recv(pbuf* chain) {
  if (closing_ || pcb_ == nullptr) {
    if (chain != nullptr) pbuf_free(chain);
    return false;
  }
  // The client is done asking: every answer is already queued ahead of our FIN.
  if (chain == nullptr) return close(false, true);
  const std::size_t length = chain->tot_len;
  if (input_.size() + length > 2 + kMaxMessage) {
    pbuf_free(chain);
    return close(true, true);
  }
  const std::size_t old_size = input_.size();
  input_.resize(old_size + length);
  pbuf_copy_partial(chain, input_.data() + old_size, static_cast<u16_t>(length), 0);
  tcp_recved(pcb_, static_cast<u16_t>(length));
  pbuf_free(chain);
  uv_timer_start(&timer_, tunnel::on_timer, kIdleMs, 0);

  std::size_t offset = 0;
  while (input_.size() - offset >= 2) {
    const std::size_t size = std::size_t{input_[offset]} << 8 | input_[offset + 1];
    if (input_.size() - offset - 2 < size) break;
    const PacketBytes response = host_.answer_dns_message({input_.data() + offset + 2, size});
    offset += 2 + size;
    // Answers are small (one record); a client that does not read them gets a reset
    // rather than a queue that grows.
    if (response.empty() || response.size() > kMaxMessage ||
        tcp_sndbuf(pcb_) < response.size() + 2) {
      return close(true, true);
    }
    const std::uint8_t prefix[2] = {static_cast<std::uint8_t>(response.size() >> 8),
                                    static_cast<std::uint8_t>(response.size())};
    if (tcp_write(pcb_, prefix, 2, TCP_WRITE_FLAG_COPY | TCP_WRITE_FLAG_MORE) != ERR_OK ||
        tcp_write(pcb_, response.data(), static_cast<u16_t>(response.size()),
                  TCP_WRITE_FLAG_COPY) != ERR_OK) {
      return close(true, true);
    }
    ++answered_;
  }
  input_.erase(input_.begin(), input_.begin() + static_cast<std::ptrdiff_t>(offset));
  tcp_output(pcb_);
  return false;
}

void DnsTcpSession::on_lwip_error() {
  pcb_ = nullptr;
  close(true, false);
}

void DnsTcpSession::on_timer() {
  close(true, false);
}

void DnsTcpSession::stop() {
  close(true, false);
}

bool DnsTcpSession::close(bool reset, bool in_lwip) {
  if (closing_) return false;
  closing_ = true;
  bool abort_in_trampoline = false;
  if (pcb_ != nullptr) {
    tcp_pcb* pcb = std::exchange(pcb_, nullptr);
    detach_callbacks(pcb);
    bool abort = reset;
    // A graceful close still sends the queued answers, then FIN.
    if (!abort && tcp_close(pcb) != ERR_OK) abort = true;
    if (abort) {
      if (in_lwip) {
        abort_in_trampoline = true;
      } else {
        tcp_abort(pcb);
      }
    }
  }
  auto* timer = reinterpret_cast<uv_handle_t*>(&timer_);
  if (timer_open_ && !uv_is_closing(timer)) uv_close(timer, tunnel::on_close);
  return abort_in_trampoline;
}

void DnsTcpSession::on_timer_closed() {
  timer_open_ = false;
  host_.dns_tcp_finished(*this);
}

}  // namespace tunsocks::tunnel
