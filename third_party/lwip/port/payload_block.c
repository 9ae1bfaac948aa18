/*
 * Upstream data that lwIP sends without copying it into pbufs (see tunsocks_lwip_port.h).
 *
 * A block is one allocation: a header, then the bytes. Every pbuf tcp_write() makes for
 * data in the current write block is a custom pbuf holding one reference; lwIP frees it
 * when the data is acknowledged or the pcb goes away, and the last reference frees the
 * block. So the bytes live exactly as long as lwIP can still (re)send them, whether or not
 * the connection's owner is still around.
 */
#include <string.h>

#include "lwip/pbuf.h"
#include "tunsocks_lwip_port.h"

struct tunsocks_payload_block {
  size_t references;
  size_t capacity;
  /* The bytes follow, aligned for anything. */
  max_align_t data[];
};

/* One pbuf over part of a block: the custom pbuf first, so lwIP's pbuf pointer is ours. */
struct block_reference {
  struct pbuf_custom pbuf;
  struct tunsocks_payload_block* block;
};

static struct tunsocks_payload_block* write_block;

struct tunsocks_payload_block* tunsocks_payload_block_new(size_t capacity) {
  struct tunsocks_payload_block* block =
      tunsocks_lwip_malloc(sizeof(struct tunsocks_payload_block) + capacity);
  if (block == NULL) return NULL;
  block->references = 1;
  block->capacity = capacity;
  return block;
}

uint8_t* tunsocks_payload_block_data(struct tunsocks_payload_block* block) {
  return (uint8_t*)block->data;
}

size_t tunsocks_payload_block_capacity(const struct tunsocks_payload_block* block) {
  return block->capacity;
}

size_t tunsocks_payload_block_references(const struct tunsocks_payload_block* block) {
  return block->references;
}

void tunsocks_payload_block_release(struct tunsocks_payload_block* block) {
  if (block != NULL && --block->references == 0) tunsocks_lwip_free(block);
}

void tunsocks_lwip_set_write_block(struct tunsocks_payload_block* block) {
  write_block = block;
}

static void free_reference(struct pbuf* p) {
  struct block_reference* reference = (struct block_reference*)p;
  tunsocks_payload_block_release(reference->block);
  tunsocks_lwip_free(reference);
}

static int inside_write_block(const uint8_t* data, uint16_t length) {
  if (write_block == NULL) return 0;
  const uint8_t* begin = tunsocks_payload_block_data(write_block);
  return data >= begin && (size_t)(data - begin) + length <= write_block->capacity;
}

struct pbuf* tunsocks_lwip_reference_pbuf(int layer, const void* data, uint16_t length) {
  (void)layer; /* the data pbuf follows the segment's header pbuf: no header room needed */
  if (!inside_write_block(data, length)) {
    /* Nothing guarantees these bytes outlive the call: lwIP gets its own copy. */
    struct pbuf* copy = pbuf_alloc(PBUF_RAW, length, PBUF_RAM);
    if (copy != NULL) memcpy(copy->payload, data, length);
    return copy;
  }
  struct block_reference* reference = tunsocks_lwip_malloc(sizeof(struct block_reference));
  if (reference == NULL) return NULL;
  reference->pbuf.custom_free_function = free_reference;
  reference->block = write_block;
  struct pbuf* p = pbuf_alloced_custom(PBUF_RAW, length, PBUF_REF, &reference->pbuf,
                                       (void*)data, length);
  if (p == NULL) {
    tunsocks_lwip_free(reference);
    return NULL;
  }
  ++write_block->references;
  return p;
}
