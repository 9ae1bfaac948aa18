/* sys_now() for lwIP, from a clock the tunnel (or a test) chooses; see tunsocks_lwip_port.h. */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <time.h>

#include "lwip/sys.h"
#include "tunsocks_lwip_port.h"

static tunsocks_lwip_clock_fn clock_now_ms = NULL;
static void* clock_context = NULL;

void tunsocks_lwip_set_clock(tunsocks_lwip_clock_fn now_ms, void* context) {
  clock_now_ms = now_ms;
  clock_context = now_ms != NULL ? context : NULL;
}

uint32_t tunsocks_lwip_monotonic_ms(void) {
  struct timespec now;
  /* CLOCK_MONOTONIC cannot fail with a valid pointer; keep the result defined anyway. */
  if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) return 0;
  uint64_t ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
  return (uint32_t)ms; /* lwIP expects wrap-around at 2^32 ms */
}

u32_t sys_now(void) {
  if (clock_now_ms != NULL) return clock_now_ms(clock_context);
  return tunsocks_lwip_monotonic_ms();
}
