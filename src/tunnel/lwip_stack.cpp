#include "tunnel/lwip_stack.h"

#include <cassert>
#include <cstring>
#include <tunsocks_lwip_port.h>
#include <utility>

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

// lwIP hands out chains; they go to the TUN as they are, in one writev. lwIP puts the IP
// and TCP headers in the chain's first pbuf.
void send_chain(pbuf* chain, std::vector<std::span<std::uint8_t>>& pieces) {
  if (g_stack == nullptr) return;
  pieces.clear();
  for (pbuf* part = chain; part != nullptr; part = part->next) {
    if (part->len != 0) pieces.emplace_back(static_cast<std::uint8_t*>(part->payload), part->len);
  }
  g_stack->output(pieces);
}

// The MSS an application announces when it sends through the TUN at `mtu`: a flow with
// it may get large segments, which the kernel cuts back to exactly that.
std::uint16_t mtu_mss(int mtu, bool v4) {
  return static_cast<std::uint16_t>(mtu - (v4 ? 40 : 60));
}
// Segments lwIP sends when the kernel cuts them: the largest that fit an IP packet with
// an IPv6 header and the most TCP options lwIP adds (SACK blocks), rounded down.
constexpr std::uint16_t kLargeSegment = 65535 - 60 - 40;
// Packets read into receive_buffer() that lwIP adopts rather than copies.
constexpr std::size_t kAdoptAtLeast = TunIo::kMaxPacket / 2;

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
  std::vector<std::span<std::uint8_t>> pieces;       // the chain being written, reused
  u16_t checksum_flags = NETIF_CHECKSUM_ENABLE_ALL;  // for packets not vouched for
  pbuf* spare = nullptr;                             // receive_buffer()'s
};

namespace {

std::vector<std::span<std::uint8_t>>* g_pieces = nullptr;

err_t netif_output_ip4(netif*, pbuf* chain, const ip4_addr_t*) {
  send_chain(chain, *g_pieces);
  return ERR_OK;
}

err_t netif_output_ip6(netif*, pbuf* chain, const ip6_addr_t*) {
  send_chain(chain, *g_pieces);
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

LwipStack::LwipStack(uv_loop_t* loop, Delegate& delegate, Options options)
    : impl_(std::make_unique<Impl>()), delegate_(delegate), options_(options) {
  assert(g_stack == nullptr && "one lwIP stack per process");
  g_stack = this;
  g_pieces = &impl_->pieces;
  tunsocks_lwip_set_clock(loop_clock, loop);
  if (!g_lwip_initialised) {
    lwip_init();
    g_lwip_initialised = true;
  }
  netif& interface = impl_->interface;
  netif_add_noaddr(&interface, nullptr, netif_setup, ip_input);
  // With large segments lwIP's own limit is the largest IP packet; the MSS of each flow
  // (below, in accept) decides what it sends.
  interface.mtu = static_cast<u16_t>(options_.large_segments ? 65535 : options_.mtu);
  if (options_.kernel_checksums) {
    impl_->checksum_flags = static_cast<u16_t>(NETIF_CHECKSUM_ENABLE_ALL & ~NETIF_CHECKSUM_GEN_TCP);
  }
  NETIF_SET_CHECKSUM_CTRL(&interface, impl_->checksum_flags);
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
  if (impl_->spare != nullptr) pbuf_free(impl_->spare);
  if (impl_->listener != nullptr) tcp_close(impl_->listener);
  netif_remove(&impl_->interface);
  tunsocks_lwip_set_clock(nullptr, nullptr);
  g_stack = nullptr;
  g_pieces = nullptr;
}

void LwipStack::close() {
  auto* timer = reinterpret_cast<uv_handle_t*>(&impl_->timer);
  if (!uv_is_closing(timer)) uv_close(timer, nullptr);
}

std::span<std::uint8_t> LwipStack::receive_buffer() {
  if (impl_->spare == nullptr) {
    impl_->spare = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(TunIo::kMaxPacket), PBUF_RAM);
    if (impl_->spare == nullptr) return {};
  }
  return {static_cast<std::uint8_t*>(impl_->spare->payload), TunIo::kMaxPacket};
}

void LwipStack::input(PacketView packet, bool checksum_trusted) {
  pbuf* chain;
  if (impl_->spare != nullptr && packet.data() == impl_->spare->payload &&
      packet.size() >= kAdoptAtLeast) {
    // Read straight into a pbuf: lwIP takes it as it is. It keeps its full allocation
    // (lwIP cannot shrink a malloc'd pbuf), hence only for packets of half of it or more.
    chain = std::exchange(impl_->spare, nullptr);
    pbuf_realloc(chain, static_cast<u16_t>(packet.size()));
  } else {
    chain = pbuf_alloc(PBUF_RAW, static_cast<u16_t>(packet.size()), PBUF_RAM);
    if (chain == nullptr) {
      ++counters_.input_errors;
      return;
    }
    std::memcpy(chain->payload, packet.data(), packet.size());
  }
  NETIF_SET_CHECKSUM_CTRL(&impl_->interface, checksum_trusted
                                                 ? impl_->checksum_flags & ~NETIF_CHECKSUM_CHECK_TCP
                                                 : impl_->checksum_flags);
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

std::uint64_t LwipStack::live_allocations() {
  return tunsocks_lwip_live_allocations();
}

void LwipStack::output(PacketPieces packet) {
  delegate_.on_lwip_output(packet);
}

bool LwipStack::accept(tcp_pcb* pcb) {
  if (options_.large_segments && pcb->mss < kLargeSegment &&
      pcb->mss == mtu_mss(options_.mtu, IP_IS_V4_VAL(pcb->remote_ip))) {
    // The kernel will cut our segments to exactly the MSS the application asked for. A
    // flow that asked for less (a clamped MSS) keeps it: the cut would not honour it.
    pcb->mss = kLargeSegment;
  }
  FlowKey key{endpoint_of(pcb->remote_ip, pcb->remote_port),
              endpoint_of(pcb->local_ip, pcb->local_port)};
  if (delegate_.on_lwip_accept(pcb, key)) return true;
  ++counters_.accept_refused;
  return false;
}

}  // namespace tunsocks::tunnel
