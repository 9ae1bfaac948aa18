#include "tunnel/lwip_stack.h"

#include <cassert>
#include <cstring>
#include <tunsocks_lwip_port.h>

#include <lwip/init.h>
#include <lwip/ip.h>
#include <lwip/netif.h>
#include <lwip/pbuf.h>
#include <lwip/priv/tcp_priv.h>
#include <lwip/tcp.h>
#include <lwip/timeouts.h>

namespace tunsocks::tunnel {
namespace {

bool g_lwip_initialised = false;
LwipStack* g_stack = nullptr;  // lwIP's callbacks carry no user pointer for the netif

std::uint32_t loop_clock(void* context) {
  return static_cast<std::uint32_t>(uv_now(static_cast<uv_loop_t*>(context)));
}

// lwIP hands out chains; the TUN wants one contiguous packet per write.
void send_chain(pbuf* chain, std::vector<std::uint8_t>& scratch) {
  if (g_stack == nullptr) return;
  if (chain->next == nullptr) {
    g_stack->output({static_cast<const std::uint8_t*>(chain->payload), chain->len});
    return;
  }
  scratch.resize(chain->tot_len);
  pbuf_copy_partial(chain, scratch.data(), chain->tot_len, 0);
  g_stack->output(scratch);
}

net::Endpoint endpoint_of(const ip_addr_t& address, std::uint16_t port) {
  net::Endpoint endpoint;
  endpoint.port = port;
  if (IP_IS_V4_VAL(address)) {
    std::array<std::uint8_t, 4> bytes{};
    std::memcpy(bytes.data(), &ip_2_ip4(&address)->addr, 4);
    endpoint.ip = net::IpAddress::v4(bytes);
  } else {
    std::array<std::uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), ip_2_ip6(&address)->addr, 16);
    endpoint.ip = net::IpAddress::v6(bytes);
  }
  return endpoint;
}

}  // namespace

struct LwipStack::Impl {
  netif interface {};
  tcp_pcb* listener = nullptr;
  uv_timer_t timer{};
  std::vector<std::uint8_t> scratch;
};

namespace {

std::vector<std::uint8_t>* g_scratch = nullptr;  // reassembles chains for the TUN write

err_t netif_output_ip4(netif*, pbuf* chain, const ip4_addr_t*) {
  send_chain(chain, *g_scratch);
  return ERR_OK;
}

err_t netif_output_ip6(netif*, pbuf* chain, const ip6_addr_t*) {
  send_chain(chain, *g_scratch);
  return ERR_OK;
}

err_t netif_setup(netif* interface) {
  interface->output = netif_output_ip4;
  interface->output_ip6 = netif_output_ip6;
  return ERR_OK;
}

err_t on_accept(void*, tcp_pcb* pcb, err_t error) {
  if (error != ERR_OK || pcb == nullptr || g_stack == nullptr) return ERR_VAL;
  if (!g_stack->accept(pcb)) {
    tcp_abort(pcb);
    return ERR_ABRT;
  }
  return ERR_OK;
}

// lwIP keeps a connection that closed first on our side in TIME_WAIT, on one list that it
// walks linearly for every segment no open connection claims (every new SYN among them),
// and input_syn walked it once more: at thousands of new flows a second the walks over
// thousands of pcbs cost more than the flows themselves. On a TUN, TIME_WAIT has nothing
// to protect: no network holds old segments that could reach a new connection, and a FIN
// the application retransmits because our last ACK was lost (a full TUN queue) is answered
// with a reset, which ends its socket in LAST_ACK just as the ACK would. So they go as
// soon as lwIP is done with a batch of input. An owner still attached (a flow waiting for
// its upstream's shutdown) hears ERR_CLSD first, as from lwIP when it frees a pcb after
// LAST_ACK: both FINs are acknowledged, nothing is lost. (lwIP itself would free such a
// pcb after 2 * TCP_MSL without telling its owner.)
void drop_time_wait() {
  tcp_pcb* pcb = tcp_tw_pcbs;
  while (pcb != nullptr) {
    tcp_pcb* next = pcb->next;
    if (pcb->callback_arg != nullptr && pcb->errf != nullptr) {
      pcb->errf(pcb->callback_arg, ERR_CLSD);  // the owner forgets the pcb, touches nothing
    }
    tcp_abort(pcb);  // in TIME_WAIT: freed, no reset sent, no callback
    pcb = next;
  }
}

void on_timer(uv_timer_t*) {
  sys_check_timeouts();
  drop_time_wait();
}

}  // namespace

LwipStack::LwipStack(uv_loop_t* loop, Delegate& delegate, int mtu)
    : impl_(std::make_unique<Impl>()), delegate_(delegate) {
  assert(g_stack == nullptr && "one lwIP stack per process");
  g_stack = this;
  g_scratch = &impl_->scratch;
  tunsocks_lwip_set_clock(loop_clock, loop);
  if (!g_lwip_initialised) {
    lwip_init();
    g_lwip_initialised = true;
  }
  netif& interface = impl_->interface;
  netif_add_noaddr(&interface, nullptr, netif_setup, ip_input);
  interface.mtu = static_cast<u16_t>(mtu);
  // Our patch: every destination that arrives on this netif is ours.
  interface.flags |= NETIF_FLAG_ACCEPT_ANY_DST;
  netif_set_default(&interface);
  netif_set_link_up(&interface);
  netif_set_up(&interface);

  // Never bound, so (with our patch) it takes SYNs to every port and address.
  tcp_pcb* pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
  impl_->listener = pcb != nullptr ? tcp_listen(pcb) : nullptr;
  assert(impl_->listener != nullptr);
  tcp_accept(impl_->listener, on_accept);

  uv_timer_init(loop, &impl_->timer);
  uv_timer_start(&impl_->timer, on_timer, TCP_TMR_INTERVAL, TCP_TMR_INTERVAL);
}

LwipStack::~LwipStack() {
  if (impl_->listener != nullptr) tcp_close(impl_->listener);
  netif_remove(&impl_->interface);
  tunsocks_lwip_set_clock(nullptr, nullptr);
  g_stack = nullptr;
  g_scratch = nullptr;
}

void LwipStack::close() {
  auto* timer = reinterpret_cast<uv_handle_t*>(&impl_->timer);
  if (!uv_is_closing(timer)) uv_close(timer, nullptr);
}

void LwipStack::input(PacketView packet) {
  pbuf* chain = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(packet.size()), PBUF_RAM);
  if (chain == nullptr) {
    ++counters_.input_errors;
    return;
  }
  std::memcpy(chain->payload, packet.data(), packet.size());
  if (impl_->interface.input(chain, &impl_->interface) != ERR_OK) {
    ++counters_.input_errors;
    pbuf_free(chain);
  }
}

void LwipStack::input_syn(PacketView packet, const FlowKey&) {
  // A TIME_WAIT pcb left by an earlier connection with the same addresses and ports would
  // answer the SYN instead of the listener.
  drop_time_wait();
  input(packet);
}

void LwipStack::check_timeouts() {
  sys_check_timeouts();
  drop_time_wait();
}

void LwipStack::output(PacketView packet) {
  delegate_.on_lwip_output(packet);
}

bool LwipStack::accept(tcp_pcb* pcb) {
  FlowKey key{endpoint_of(pcb->remote_ip, pcb->remote_port),
              endpoint_of(pcb->local_ip, pcb->local_port)};
  if (delegate_.on_lwip_accept(pcb, key)) return true;
  ++counters_.accept_refused;
  return false;
}

}  // namespace tunsocks::tunnel
