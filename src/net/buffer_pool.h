// Fixed-size read buffers shared by the connections of one loop.
//
// Large reads (64 KiB) are what make a relay fast, but a buffer per connection direction
// would cost 128 KiB for every idle connection. Instead a connection takes a block only
// for the time between libuv's alloc callback and the moment its data has been written
// on (usually the same callback), and gives it back; idle connections hold nothing. The
// pool keeps a bounded number of free blocks, so steady traffic allocates nothing and a
// burst does not pin its peak memory forever.
//
// One loop, one thread: the pool is not thread-safe.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace tunsocks::net {

class BufferPool {
 public:
  BufferPool(std::size_t block_size, std::size_t max_idle_blocks);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  [[nodiscard]] std::size_t block_size() const { return block_size_; }
  // A block of block_size() bytes (contents undefined).
  [[nodiscard]] char* acquire();
  // Takes back a block from acquire(); nullptr is ignored.
  void release(char* block);

  [[nodiscard]] std::size_t outstanding() const { return outstanding_; }
  [[nodiscard]] std::size_t idle() const { return idle_.size(); }

 private:
  std::size_t block_size_;
  std::size_t max_idle_;
  std::size_t outstanding_ = 0;
  std::vector<char*> idle_;
};

// Owns one block of a pool until release() or destruction. Move-only.
class PooledBuffer {
 public:
  PooledBuffer() = default;
  // Adopts `block` (from pool.acquire(), possibly nullptr).
  PooledBuffer(BufferPool& pool, char* block) : pool_(&pool), block_(block) {}
  PooledBuffer(PooledBuffer&& other) noexcept
      : pool_(other.pool_), block_(std::exchange(other.block_, nullptr)) {}
  PooledBuffer& operator=(PooledBuffer&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = other.pool_;
      block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
  }
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer() { reset(); }

  [[nodiscard]] char* data() const { return block_; }
  explicit operator bool() const { return block_ != nullptr; }
  void reset() {
    if (block_ != nullptr) pool_->release(std::exchange(block_, nullptr));
  }

 private:
  BufferPool* pool_ = nullptr;
  char* block_ = nullptr;
};

}  // namespace tunsocks::net
