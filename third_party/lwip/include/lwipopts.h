/*
 * lwIP options for tunsocks: a userspace TCP endpoint for every flow a TUN device hands us,
 * on a PC or server, not a microcontroller. Memory comes from malloc and is bounded per flow
 * by the TCP windows below, not by static pools; the number of flows is bounded only by RAM.
 *
 * Read by lwip/opt.h before its defaults. Every value set here says why. Options left at
 * lwIP's default are either irrelevant to us or already what we want.
 *
 * Build switches (set by third_party/lwip/CMakeLists.txt, on the tunsocks_lwip target's
 * PUBLIC interface so lwIP and every user of its headers see the same configuration):
 *   TUNSOCKS_LWIP_DEBUG=1  LWIP_DEBUG, lwIP's assertions and stats on (sanitizer builds).
 *   TUNSOCKS_LWIP_DEBUG=0  assertions compiled out (LWIP_NOASSERT).
 */
#ifndef TUNSOCKS_LWIPOPTS_H
#define TUNSOCKS_LWIPOPTS_H

/* ---- system ------------------------------------------------------------------------- */

/* One thread runs the libuv loop and lwIP with it: the raw API only, no OS layer. */
#define NO_SYS 1
/* Nothing else touches lwIP state, so critical sections need no locking. */
#define SYS_LIGHTWEIGHT_PROT 0
/* lwIP's timeout list (TCP fast/slow timers, IP reassembly, ND6) driven by a uv_timer
   calling sys_check_timeouts(); sys_now() comes from port/clock.c. */
#define LWIP_TIMERS 1

/* ---- memory: the heap, not static pools ------------------------------------------- */

/* mem_malloc() is libc malloc: no fixed MEM_SIZE arena to size or exhaust. */
#define MEM_LIBC_MALLOC 1
/* ... through wrappers that count live allocations (port/alloc.c), so tests can see that
   closed flows gave back everything (pcbs, segments, pbufs) in any build. */
#include "tunsocks_lwip_port.h"
#define mem_clib_malloc tunsocks_lwip_malloc
#define mem_clib_calloc tunsocks_lwip_calloc
#define mem_clib_free tunsocks_lwip_free
/* Every memp pool (pcbs, segments, pbuf structs, reassembly entries) also comes from
   malloc, so 100000 flows need no MEMP_NUM_* tuning; the MEMP_NUM_* values are unused. */
#define MEMP_MEM_MALLOC 1
/* malloc returns memory aligned for any type; payload offsets are aligned to 8 so the
   u32_t fields of headers built in pbufs are naturally aligned on 64-bit hosts. */
#define MEM_ALIGNMENT 8
/* A TUN (IFF_NO_PI) packet starts with the IP header: reserve no link-level header room. */
#define PBUF_LINK_HLEN 0
/* Size of a PBUF_POOL buffer. Nothing in our build allocates pool pbufs (the TUN reader
   allocates PBUF_RAM of the packet's size); the default, TCP_MSS + headers, would not fit a
   u16_t with our TCP_MSS. 2 KiB holds an Ethernet-sized packet if the glue ever uses it. */
#define PBUF_POOL_BUFSIZE 2048

/* ---- interfaces ------------------------------------------------------------------- */

/* Exactly one netif, the TUN device: input skips walking a netif list and routing is
   "the default netif" (ip4_route/ip6_route return it). */
#define LWIP_SINGLE_NETIF 1
/* No loopback netif: the host's own loopback never reaches a TUN. */
#define LWIP_HAVE_LOOPIF 0
#define LWIP_NETIF_LOOPBACK 0
/* The netif thread-safe API is for multi-threaded ports; we call netif_* directly. */
#define LWIP_NETIF_API 0
/* Our netif output writes the pbuf chain with writev; forcing single-pbuf TCP segments
   would make tcp_write allocate a full-MSS pbuf for every write. */
#define LWIP_NETIF_TX_SINGLE_PBUF 0

/* ---- link layer: none ------------------------------------------------------------- */

/* TUN is layer 3: no Ethernet framing, no ARP. */
#define LWIP_ARP 0
#define LWIP_ETHERNET 0

/* ---- IPv4 ------------------------------------------------------------------------- */

#define LWIP_IPV4 1
/* We terminate flows, we never route between interfaces. */
#define IP_FORWARD 0
/* Reassembly is on: fragmented packets from the TUN are put together before TCP sees
   them, and the UDP path reuses ip4_reass()/ip6_reass() instead of writing its own. */
#define IP_REASSEMBLY 1
/* Global cap on fragments waiting for reassembly (IPv4 and IPv6 count separately), so a
   stream of never-completed fragments cannot grow memory: 512 fragments of one MTU each
   (about 750 KiB at MTU 1500) hold ten maximum-size 64 KiB datagrams at the IPv6 minimum
   MTU. Oldest datagrams are dropped first when it is reached. */
#define IP_REASS_MAX_PBUFS 512
/* Seconds an incomplete datagram is kept (RFC 791 suggests 15 s as the lower bound). */
#define IP_REASS_MAXAGE 15
/* Outgoing fragmentation stays on: an ICMP echo reply to a fragmented request may be
   larger than the MTU. TCP never needs it (its MSS follows the MTU). */
#define IP_FRAG 1
/* An ordinary host TTL: replies look like they came from a typical Linux peer. */
#define IP_DEFAULT_TTL 64
/* Echo requests reaching lwIP are answered; broadcast pings are not. */
#define LWIP_ICMP 1
#define LWIP_BROADCAST_PING 0
#define LWIP_MULTICAST_PING 0

/* ---- IPv6 ------------------------------------------------------------------------- */

#define LWIP_IPV6 1
/* ICMPv6 is mandatory for IPv6 (errors, echo, ND input handling). */
#define LWIP_ICMP6 1
#define LWIP_IPV6_FORWARD 0
/* Same reasons as IPv4 (shares IP_REASS_MAX_PBUFS). */
#define LWIP_IPV6_REASS 1
#define LWIP_IPV6_FRAG 1
/* IPv6 reassembly links fragments through a helper struct (holding a pointer) written
   over each fragment's 8-byte fragment header; with 64-bit pointers it does not fit, and
   lwIP must save the overwritten bytes aside. Without this, reassembly corrupts packets
   on 64-bit hosts (LWIP_DEBUG builds assert in ip6_reass_tmr). Harmless on 32-bit. */
#define IPV6_FRAG_COPYHEADER 1
/* No multicast listener discovery, no SLAAC, no DHCPv6: the TUN's addresses are set by
   tunsocks, and a point-to-point TUN has no routers or neighbours to talk to. */
#define LWIP_IPV6_MLD 0
#define LWIP_IPV6_AUTOCONFIG 0
#define LWIP_IPV6_DHCP6 0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT 0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS 0
/* Router advertisements are not ours to obey (and never arrive on a TUN); netif->mtu is
   the one MTU for both families. */
#define LWIP_ND6_ALLOW_RA_UPDATES 0
/* TCP need not feed ND reachability hints: there is no neighbour cache in use on a TUN. */
#define LWIP_ND6_TCP_REACHABILITY_HINTS 0
/* ND output queueing only matters with a link layer (ethip6_output), which we do not have. */
#define LWIP_ND6_QUEUEING 0

/* ---- transports ------------------------------------------------------------------- */

#define LWIP_TCP 1
/* UDP does not go through lwIP (the tunnel parses datagrams itself), nor do raw pcbs.
   Turning these on also needs udp.c / raw.c added in third_party/lwip/CMakeLists.txt. */
#define LWIP_UDP 0
#define LWIP_RAW 0
/* No name resolution, DHCP, AutoIP, IGMP inside lwIP. */
#define LWIP_DNS 0
#define LWIP_DHCP 0
#define LWIP_AUTOIP 0
#define LWIP_IGMP 0
/* Raw callback API only: no sequential (netconn) or BSD socket API, no altcp. */
#define LWIP_SOCKET 0
#define LWIP_NETCONN 0
#define LWIP_ALTCP 0
#define LWIP_CALLBACK_API 1

/* ---- TCP -------------------------------------------------------------------------- */

/* Largest segment that fits a 65535-byte IPv6 packet (65535 - 40 IPv6 - 20 TCP), the
   largest TUN MTU we target. The MSS actually used follows the netif MTU (below), so a
   1500-byte TUN still gets 1460/1440; this only removes lwIP's 536-byte default cap. */
#define TCP_MSS 65475
/* Derive the MSS we announce and use from the netif MTU (tcp_eff_send_mss). */
#define TCP_CALCULATE_EFF_SEND_MSS 1
/* Window scaling (RFC 7323) so the receive window can exceed 64 KiB. */
#define LWIP_WND_SCALE 1
/* Receive window per flow: data the app sent that the upstream has not yet taken. The
   tunnel calls tcp_recved() only when the upstream write completes, so this is also the
   most the app -> upstream direction can hold in memory per flow. 512 KiB fills a local
   TUN path (RTT of microseconds to one loop turn) at multi-Gbit/s; a larger window buys
   little there and multiplies worst-case memory by the number of stalled flows. */
#define TCP_WND (512 * 1024)
/* Smallest shift that fits TCP_WND in the 16-bit window field: 0xFFFF << 4 >= 512 KiB. */
#define TCP_RCV_SCALE 4
/* Send buffer per flow: upstream bytes written into lwIP and not yet acknowledged by the
   app. The tunnel reads from the upstream only while there is room, so this bounds the
   upstream -> app direction per flow, e.g. a video player reading at its bitrate keeps
   exactly this much queued. Same reasoning as TCP_WND. Note tcp_sndbuf() reports at
   most 0xFFFF (a u16_t in lwIP 2.1's API); pcb->snd_buf holds the full value. */
#define TCP_SND_BUF (512 * 1024)
/* Cap on pbufs queued for sending per flow. lwIP's default formula assumes every segment
   is TCP_MSS long; ours often are 1460 or less (MTU 1500), so size it for the smallest
   MSS a peer may use (536): 4 pbufs per segment-sized chunk of TCP_SND_BUF. It only caps
   a count (memory is bounded by TCP_SND_BUF); when hit, tcp_write returns ERR_MEM like a
   full buffer. Must fit a u16_t. */
#define TCP_SND_QUEUELEN ((4 * TCP_SND_BUF + 535) / 536)
/* tcp_write copies into pbufs with spare room so following small writes fill that room
   instead of chaining a new pbuf. lwIP's default (TCP_MSS) would allocate 64 KiB for a
   10-byte write with our MSS; 4 KiB coalesces small upstream reads at a bounded cost. */
#define TCP_OVERSIZE 4096
/* tcp_write without TCP_WRITE_FLAG_COPY (downloads: src/tunnel/tcp_flow.cpp) references
   the data through pbufs that keep its payload block alive (port/payload_block.c, lwIP
   patch 0008), instead of PBUF_ROM pbufs whose memory the caller would have to keep. */
#define LWIP_SUPPORT_CUSTOM_PBUF 1
#define TCP_WRITE_REFERENCE_PBUF(layer, data, length) \
  tunsocks_lwip_reference_pbuf(layer, data, length)
/* No checksum while copying in tcp_write: lwIP's "on copy" is a copy followed by a sum
   (two passes, like summing at output), and it would sum even when the kernel completes
   TCP checksums for us (checksum offload, see below), which is the common case. */
#define LWIP_CHECKSUM_ON_COPY 0
/* Keep out-of-order segments (the app side rarely reorders, but a TUN queue overflow or
   a dropped read batch loses packets and we want only the hole retransmitted). */
#define TCP_QUEUE_OOSEQ 1
/* Bound the out-of-order queue per flow: it can never exceed the receive window in bytes;
   the pbuf cap stops a peer from filling the window with tiny segments, each costing a
   pbuf and a malloc. */
#define TCP_OOSEQ_MAX_BYTES TCP_WND
#define TCP_OOSEQ_MAX_PBUFS 512
/* Selective acknowledgements for the out-of-order data we hold (RFC 2018; lwIP 2.1
   sends SACK but does not act on received ones), so the app's kernel resends holes only. */
#define LWIP_TCP_SACK_OUT 1
#define LWIP_TCP_MAX_SACK_NUM 4
/* No timestamps option: RTT over a TUN is tiny and stable, and PAWS protects against old
   duplicates delayed in a network, which a local TUN does not have; saves 12 bytes a
   segment. */
#define LWIP_TCP_TIMESTAMPS 0
/* Per-pcb keepalive timing (tcp_keepalive idle/interval/count settable by the tunnel), so
   idle flows whose app vanished without a FIN/RST can be detected and reaped. */
#define LWIP_TCP_KEEPALIVE 1
/* TIME_WAIT lasts 2 * TCP_MSL. On a TUN no segment can linger in a network, so the
   stock 2 minutes only keep the 4-tuple busy: when the upstream closes first, lwIP holds
   TIME_WAIT while the app's kernel holds none and may reuse its port at once; the new SYN
   would then hit the TIME_WAIT pcb instead of our listener. 2 seconds covers a
   retransmitted FIN and frees the tuple quickly. (In practice the tunnel drops every TIME_WAIT
   pcb after each batch of input, src/tunnel/lwip_stack.cpp drop_time_wait, so this bound
   is never reached.) */
#define TCP_MSL 1000UL
/* No listen backlog cap in lwIP: the classifier in front of lwIP holds each new flow's
   SYN until the upstream accepts, so it bounds pending flows; lwIP's u8_t backlog (max
   255) would silently drop SYNs in a connection-rate burst. */
#define TCP_LISTEN_BACKLOG 0
/* lwIP's TCP sanity checks in init.c include "TCP_SNDLOWAT must be 4*TCP_MSS below
   0xFFFF", a rule of the netconn/socket layer (the only reader of TCP_SNDLOWAT), which we
   do not build; with TCP_MSS near 64 KiB no value can satisfy it. The remaining rules are
   kept below as our own checks. */
#define LWIP_DISABLE_TCP_SANITY_CHECKS 1

/* ---- checksums -------------------------------------------------------------------- */

/* Every checksum is compiled in; the netif's flags decide per packet (src/tunnel/
   lwip_stack.cpp). With the TUN's checksum offload (src/tunnel/tun_io.h) the local kernel
   completes the TCP checksums lwIP leaves out, and a TCP packet it marks as its own
   ("needs checksum": it never crossed a wire) is not verified. Every other packet is
   verified: one the stack cannot trust must be dropped, not turned into a SOCKS request
   (corrupted ports or addresses would connect somewhere wrong), and the fuzzers and
   tests inject hand-built packets through this path. */
#define LWIP_CHECKSUM_CTRL_PER_NETIF 1
#define CHECKSUM_GEN_IP 1
#define CHECKSUM_GEN_TCP 1
#define CHECKSUM_GEN_ICMP 1
#define CHECKSUM_GEN_ICMP6 1
#define CHECKSUM_CHECK_IP 1
#define CHECKSUM_CHECK_TCP 1
#define CHECKSUM_CHECK_ICMP 1
#define CHECKSUM_CHECK_ICMP6 1

/* ---- debug and statistics --------------------------------------------------------- */

#if defined(TUNSOCKS_LWIP_DEBUG) && TUNSOCKS_LWIP_DEBUG
/* lwIP's LWIP_ASSERT and LWIP_ERROR diagnostics on; individual *_DEBUG message groups
   stay off (turn one on locally, e.g. TCP_INPUT_DEBUG LWIP_DBG_ON, when chasing a bug). */
#define LWIP_DEBUG 1
/* Counters (heap bytes and memp elements in use, TCP drops, ...) so tests can check that
   nothing leaked. lwIP leaves heap and pool counters off by default with libc malloc;
   mem.c and memp.c support them there (a size header per allocation), so turn them on.
   (LWIP_DEBUG also turns on lwIP's TCP_OVERSIZE_DBGCHECK by itself.) */
#define LWIP_STATS 1
#define MEM_STATS 1
#define MEMP_STATS 1
#else
/* Release: assertions compiled out, no counters (the tunnel keeps its own). */
#define LWIP_NOASSERT 1
#define LWIP_STATS 0
#endif

/* ---- our own checks --------------------------------------------------------------- */

/* The TCP rules of lwIP's init.c that still apply with LWIP_DISABLE_TCP_SANITY_CHECKS. */
#if TCP_SND_BUF < (2 * TCP_MSS)
#error "TCP_SND_BUF must hold at least two full segments"
#endif
#if TCP_SND_QUEUELEN < (2 * (TCP_SND_BUF / TCP_MSS))
#error "TCP_SND_QUEUELEN must be at least 2 * TCP_SND_BUF / TCP_MSS"
#endif
#if TCP_SND_QUEUELEN > 0xFFFF
#error "TCP_SND_QUEUELEN must fit a u16_t"
#endif
#if TCP_WND < TCP_MSS
#error "TCP_WND must hold at least one full segment"
#endif
#if TCP_WND > (0xFFFF << TCP_RCV_SCALE) || (TCP_WND >> TCP_RCV_SCALE) == 0
#error "TCP_RCV_SCALE does not fit TCP_WND"
#endif
/* A full segment plus the TCP and IPv6 headers must fit a pbuf, whose lengths are u16_t
   (TCP options are carved out of the MSS by tcp_write): at most 65535 - 40 - 20. */
#if TCP_MSS > (0xFFFF - 40 - 20)
#error "TCP_MSS too large for a u16_t packet length"
#endif

#endif /* TUNSOCKS_LWIPOPTS_H */
