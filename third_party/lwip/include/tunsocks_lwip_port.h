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

#ifdef __cplusplus
}
#endif

#endif /* TUNSOCKS_LWIP_PORT_H */
