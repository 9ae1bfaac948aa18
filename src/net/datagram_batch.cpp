#include "net/datagram_batch.h"

#include <algorithm>
#include <cerrno>

#include "net/endpoint.h"

namespace tunsocks::net {

bool DatagramBatch::add(int fd, std::span<const std::uint8_t> header,
                        std::span<const std::uint8_t> payload, const sockaddr* to) {
  if (count_ == kCapacity || (count_ != 0 && fd != fd_) || header.size() > kMaxHeader) {
    return false;
  }
  fd_ = fd;
  const std::size_t i = count_++;
  std::copy(header.begin(), header.end(), headers_[i].begin());
  std::size_t pieces = 0;
  if (!header.empty()) parts_[i][pieces++] = {headers_[i].data(), header.size()};
  parts_[i][pieces++] = {const_cast<std::uint8_t*>(payload.data()), payload.size()};
  msghdr& message = messages_[i].msg_hdr;
  message = msghdr{};
  message.msg_iov = parts_[i].data();
  message.msg_iovlen = pieces;
  if (to != nullptr) {
    const auto length = sockaddr_length(to);
    std::copy_n(reinterpret_cast<const std::uint8_t*>(to), length,
                reinterpret_cast<std::uint8_t*>(&addresses_[i]));
    message.msg_name = &addresses_[i];
    message.msg_namelen = static_cast<socklen_t>(length);
  }
  return true;
}

BatchResult DatagramBatch::flush() {
  BatchResult result;
  std::size_t next = 0;
  while (next < count_) {
    const int n =
        ::sendmmsg(fd_, &messages_[next], static_cast<unsigned>(count_ - next), MSG_DONTWAIT);
    if (n > 0) {
      for (std::size_t i = next; i < next + static_cast<std::size_t>(n); ++i) {
        const msghdr& message = messages_[i].msg_hdr;
        result.sent_bytes += message.msg_iov[message.msg_iovlen - 1].iov_len;
      }
      result.sent += static_cast<std::size_t>(n);
      next += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      // The socket (or the device queue) is full: the rest would fail alike.
      result.dropped += count_ - next;
      break;
    }
    // sendmmsg reports an error only for the first datagram it tried: skip that one.
    ++result.dropped;
    ++next;
  }
  count_ = 0;
  fd_ = -1;
  return result;
}

}  // namespace tunsocks::net
