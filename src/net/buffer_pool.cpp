#include "net/buffer_pool.h"

#include <cassert>

namespace tunsocks::net {

BufferPool::BufferPool(std::size_t block_size, std::size_t max_idle_blocks)
    : block_size_(block_size), max_idle_(max_idle_blocks) {
  idle_.reserve(max_idle_);
}

BufferPool::~BufferPool() {
  // A block still out here would be written to after this (a request outliving its
  // owner): that is a lifetime bug in the caller, not something to paper over.
  assert(outstanding_ == 0);
  for (char* block : idle_)
    delete[] block;
}

char* BufferPool::acquire() {
  ++outstanding_;
  if (!idle_.empty()) {
    char* block = idle_.back();
    idle_.pop_back();
    return block;
  }
  return new char[block_size_];
}

void BufferPool::release(char* block) {
  if (block == nullptr) return;
  assert(outstanding_ > 0);
  --outstanding_;
  // Last in, first out: the block handed out next is the one still warm in the cache.
  if (idle_.size() < max_idle_) {
    idle_.push_back(block);
  } else {
    delete[] block;
  }
}

}  // namespace tunsocks::net
