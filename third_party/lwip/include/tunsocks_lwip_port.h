/*
 * What tunsocks' lwIP port offers its users: the clock lwIP reads through sys_now(), and a
 * count of lwIP's live heap allocations.
 *
 * lwIP's timers (TCP retransmission, delayed ACK, keepalive, reassembly timeouts) measure
 * time with sys_now(). The tunnel points it at its libuv loop's clock, so lwIP and the
 * loop agree on "now"; tests point it at a counter they advance by hand. Without a hook,
 * sys_now() reads CLOCK_MONOTONIC. Milliseconds, wrapping at 2^32 (lwIP compares
 * differences, so wrap-around is fine).
 *
 * Not thread-safe, like lwIP itself under NO_SYS: call from the thread that runs lwIP.
 */
#ifndef TUNSOCKS_LWIP_PORT_H
#define TUNSOCKS_LWIP_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns the current time in milliseconds; `context` is the pointer given with it. */
typedef uint32_t (*tunsocks_lwip_clock_fn)(void* context);

/* Makes sys_now() return now_ms(context). now_ms == NULL restores the default clock. */
void tunsocks_lwip_set_clock(tunsocks_lwip_clock_fn now_ms, void* context);

/* The default clock: CLOCK_MONOTONIC in milliseconds, truncated to 32 bits. */
uint32_t tunsocks_lwip_monotonic_ms(void);

/* lwIP's heap (port/alloc.c; lwipopts.h routes mem_clib_* here): malloc, calloc and free
   that count the allocations lwIP holds now. */
void* tunsocks_lwip_malloc(size_t size);
void* tunsocks_lwip_calloc(size_t count, size_t size);
void tunsocks_lwip_free(void* memory);
uint64_t tunsocks_lwip_live_allocations(void);

/* Payload blocks (port/payload_block.c): memory that upstream data is read into and that
   lwIP then sends in place, without copying it into pbufs. A block is reference-counted:
   new() returns it with one reference (the caller's); while it is the write block, every
   pbuf tcp_write() makes for data inside it (tcp_write without TCP_WRITE_FLAG_COPY) holds
   one more, dropped when lwIP frees that pbuf (data acknowledged, or the pcb freed). The
   last release frees the block. Blocks and their pbufs count as lwIP allocations. */
struct tunsocks_payload_block;
struct tunsocks_payload_block* tunsocks_payload_block_new(size_t capacity);
uint8_t* tunsocks_payload_block_data(struct tunsocks_payload_block* block);
size_t tunsocks_payload_block_capacity(const struct tunsocks_payload_block* block);
size_t tunsocks_payload_block_references(const struct tunsocks_payload_block* block);
void tunsocks_payload_block_release(struct tunsocks_payload_block* block);
/* Sets (or, with NULL, clears) the block tcp_write() references data in. Data outside it
   is copied into a pbuf of lwIP's own, never referenced. */
void tunsocks_lwip_set_write_block(struct tunsocks_payload_block* block);
/* lwipopts.h's TCP_WRITE_REFERENCE_PBUF (lwIP patch 0008). `layer` is a pbuf_layer. */
struct pbuf;
struct pbuf* tunsocks_lwip_reference_pbuf(int layer, const void* data, uint16_t length);

#ifdef __cplusplus
}
#endif

#endif /* TUNSOCKS_LWIP_PORT_H */
