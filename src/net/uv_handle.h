// libuv helpers: an owner for one libuv handle, and libuv error values.
//
// The rule libuv imposes (docs/src/handle.rst): a handle's memory may be released only in
// its close callback, which runs on a later loop iteration than uv_close(). UvHandle makes
// that mechanical: the handle lives in a heap block that only the close callback frees, so
// the owning object may be destroyed right after close() without a use-after-free inside
// libuv. The owner learns that the close finished through an optional callback, which is
// how a session counts its handles down to zero before it goes away.
//
// Requests (writes, connects, shutdowns) are not handles: whoever submits one owns it and
// its buffers until its callback runs, which libuv guarantees also after uv_close()
// (with UV_ECANCELED).
#pragma once

#include <cstddef>
#include <string>
#include <sys/socket.h>
#include <type_traits>
#include <utility>

#include <uv.h>

namespace tunsocks::net {

// A libuv result code (a negative errno or UV_E*), kept as a value.
struct UvError {
  int code = 0;
  [[nodiscard]] std::string name() const;     // "ECONNREFUSED"
  [[nodiscard]] std::string message() const;  // "connection refused"
};
[[nodiscard]] std::string uv_error_name(int code);
[[nodiscard]] std::string uv_error_message(int code);

// Closes `handle` with an RST instead of a FIN (SO_LINGER 0, then uv_close). Unlike
// uv_tcp_close_reset this also works after uv_shutdown(), where a peer that reset one side
// must still see the other side reset.
void close_with_reset(uv_tcp_t* handle, uv_close_cb callback);

// After a read reported UV_EOF: true when the peer actually reset the connection. libuv
// turns a hang-up that follows a partial read into UV_EOF without reading the socket error,
// so an RST can look like a FIN; relaying it as a FIN would make a truncated stream look
// complete. The socket's pending error tells them apart. (The TCP state does not: after
// our own FIN has been acknowledged, a graceful end also leaves the socket CLOSED.)
[[nodiscard]] bool peer_reset(const uv_stream_t* tcp_stream);

template <class H>
class UvHandle {
 public:
  using ClosedCallback = void (*)(void* context);

  UvHandle() = default;
  UvHandle(const UvHandle&) = delete;
  UvHandle& operator=(const UvHandle&) = delete;
  UvHandle(UvHandle&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  UvHandle& operator=(UvHandle&& other) noexcept {
    if (this != &other) {
      close();
      block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
  }
  // Closing without a callback: the memory is still freed in the close callback.
  ~UvHandle() { close(); }

  // Allocates the handle and runs `init(H*)` (uv_tcp_init and friends). On failure the
  // memory is freed at once (libuv never registered the handle) and the error returned.
  template <class Init>
  [[nodiscard]] int init(Init&& init_function) {
    close();
    auto* block = new Block{};
    int rc = std::forward<Init>(init_function)(&block->handle);
    if (rc < 0) {
      delete block;
      return rc;
    }
    block_ = block;
    return 0;
  }

  // The handle while it is open; nullptr before init() and once close() was called.
  [[nodiscard]] H* get() const { return block_ ? &block_->handle : nullptr; }
  [[nodiscard]] uv_handle_t* handle() const { return reinterpret_cast<uv_handle_t*>(get()); }
  [[nodiscard]] uv_stream_t* stream() const { return reinterpret_cast<uv_stream_t*>(get()); }
  [[nodiscard]] bool is_open() const { return block_ != nullptr; }
  explicit operator bool() const { return is_open(); }

  // Idempotent. `closed(context)` runs from the close callback after the memory is freed.
  void close(ClosedCallback closed = nullptr, void* context = nullptr) {
    Block* block = std::exchange(block_, nullptr);
    if (block == nullptr) return;
    block->closed = closed;
    block->context = context;
    uv_close(reinterpret_cast<uv_handle_t*>(&block->handle), &UvHandle::on_close);
  }

  // TCP only: close with an RST (see close_with_reset).
  void close_reset(ClosedCallback closed = nullptr,
                   void* context = nullptr) requires std::is_same_v<H, uv_tcp_t> {
    Block* block = std::exchange(block_, nullptr);
    if (block == nullptr) return;
    block->closed = closed;
    block->context = context;
    close_with_reset(&block->handle, &UvHandle::on_close);
  }

 private:
  struct Block {
    H handle;  // first: the close callback turns the uv_handle_t* back into the block
    ClosedCallback closed = nullptr;
    void* context = nullptr;
  };
  static_assert(std::is_standard_layout_v<Block>);

  static void on_close(uv_handle_t* handle) {
    auto* block = reinterpret_cast<Block*>(handle);
    ClosedCallback closed = block->closed;
    void* context = block->context;
    delete block;
    if (closed != nullptr) closed(context);
  }

  Block* block_ = nullptr;
};

// The local or peer address of a connected TCP handle.
[[nodiscard]] bool tcp_local_address(const uv_tcp_t* handle, sockaddr_storage& out);
[[nodiscard]] bool tcp_peer_address(const uv_tcp_t* handle, sockaddr_storage& out);

}  // namespace tunsocks::net
