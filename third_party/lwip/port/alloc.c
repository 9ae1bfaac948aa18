/*
 * lwIP's heap (MEM_LIBC_MALLOC: pcbs, segments and pbufs all come from malloc) with a count
 * of live allocations, so that "everything lwIP held for closed flows was freed" can be
 * checked from outside in every build, not only where lwIP's statistics are compiled in.
 */
#include <stdlib.h>

#include "tunsocks_lwip_port.h"

static uint64_t live_allocations;

void* tunsocks_lwip_malloc(size_t size) {
  void* memory = malloc(size);
  if (memory != NULL) ++live_allocations;
  return memory;
}

void* tunsocks_lwip_calloc(size_t count, size_t size) {
  void* memory = calloc(count, size);
  if (memory != NULL) ++live_allocations;
  return memory;
}

void tunsocks_lwip_free(void* memory) {
  if (memory != NULL) --live_allocations;
  free(memory);
}

uint64_t tunsocks_lwip_live_allocations(void) {
  return live_allocations;
}
