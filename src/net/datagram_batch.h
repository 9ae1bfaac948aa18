// Datagrams bound for one UDP socket, handed to the kernel in one sendmmsg(2).
//
// A relay that forwards a burst with one sendmsg(2) per datagram pays a system call per
// datagram and, on a busy machine, is preempted by the reader it wakes after each one
// (the echo bench at 40,000 datagrams/s spent a tenth of socksd's time switching out of
// sendmsg). A batch pays both once. Only a short header per datagram is copied: the
// payload must stay where it is until flush().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <sys/socket.h>

namespace tunsocks::net {

struct BatchResult {
  std::size_t sent = 0;        // datagrams the kernel took
  std::size_t sent_bytes = 0;  // their payload bytes, headers not counted
  std::size_t dropped = 0;     // refused: a full socket buffer, or an error for their destination
};

class DatagramBatch {
 public:
  static constexpr std::size_t kCapacity = 32;
  // The longest header: a SOCKS UDP header with an IPv6 address takes 22 bytes.
  static constexpr std::size_t kMaxHeader = 24;

  DatagramBatch() = default;
  DatagramBatch(const DatagramBatch&) = delete;
  DatagramBatch& operator=(const DatagramBatch&) = delete;

  // Queues one datagram, `header` (copied) then `payload` (not copied), for socket `fd`,
  // to `to` (nullptr on a connected socket). Queues nothing and returns false when the
  // batch is full, holds datagrams for another socket, or the header is too long: flush()
  // first (or send it another way).
  [[nodiscard]] bool add(int fd, std::span<const std::uint8_t> header,
                         std::span<const std::uint8_t> payload, const sockaddr* to);
  // Sends everything queued and empties the batch. When the socket's buffer is full the
  // rest is dropped (what a UDP send does anyway); an error that belongs to one datagram
  // (its destination unreachable, say) drops only that one.
  BatchResult flush();

  [[nodiscard]] bool empty() const { return count_ == 0; }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::size_t count_ = 0;
  std::array<mmsghdr, kCapacity> messages_{};
  std::array<std::array<iovec, 2>, kCapacity> parts_{};
  std::array<std::array<std::uint8_t, kMaxHeader>, kCapacity> headers_{};
  std::array<sockaddr_storage, kCapacity> addresses_{};
};

}  // namespace tunsocks::net
