/* The hooks declared in fuzz_hooks.h; linked into tunsocks_lwip_fuzz only. */
#include "fuzz_hooks.h"

static uint32_t next_isn = 0;

void tunsocks_lwip_fuzz_set_isn(uint32_t isn) {
  next_isn = isn;
}

uint32_t tunsocks_lwip_fuzz_isn(void) {
  return next_isn;
}
