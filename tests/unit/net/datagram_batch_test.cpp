#include "net/datagram_batch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>

namespace net = tunsocks::net;

namespace {

using Bytes = std::vector<std::uint8_t>;

// A UDP socket bound to 127.0.0.1 on a port of the kernel's choosing.
struct LoopbackSocket {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in address{};

  LoopbackSocket() {
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  }
  ~LoopbackSocket() { ::close(fd); }
  const sockaddr* to() const { return reinterpret_cast<const sockaddr*>(&address); }

  // Every datagram waiting, in order.
  std::vector<std::string> drain() const {
    std::vector<std::string> got;
    char buffer[2048];
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n < 0) return got;
      got.emplace_back(buffer, static_cast<std::size_t>(n));
    }
  }
};

Bytes bytes_of(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

}  // namespace

TEST_CASE("datagram_batch_sends_header_and_payload_of_each_datagram_in_order") {
  LoopbackSocket sender, receiver;
  net::DatagramBatch batch;
  const Bytes header = bytes_of("H1:");
  const Bytes first = bytes_of("first"), second = bytes_of("second datagram"),
              third = bytes_of("3");
  REQUIRE(batch.add(sender.fd, header, first, receiver.to()));
  REQUIRE(batch.add(sender.fd, {}, second, receiver.to()));
  REQUIRE(batch.add(sender.fd, bytes_of("H3:"), third, receiver.to()));
  CHECK_FALSE(batch.empty());

  const net::BatchResult result = batch.flush();
  CHECK(result.sent == 3);
  CHECK(result.sent_bytes == first.size() + second.size() + third.size());  // headers not counted
  CHECK(result.dropped == 0);
  CHECK(batch.empty());
  CHECK(receiver.drain() == std::vector<std::string>{"H1:first", "second datagram", "H3:3"});
}

TEST_CASE("datagram_batch_takes_one_socket_at_a_time_and_no_more_than_its_capacity") {
  LoopbackSocket sender, other, receiver;
  net::DatagramBatch batch;
  const Bytes payload = bytes_of("x");
  REQUIRE(batch.add(sender.fd, {}, payload, receiver.to()));
  CHECK_FALSE(batch.add(other.fd, {}, payload, receiver.to()));
  const Bytes long_header(net::DatagramBatch::kMaxHeader + 1, 0);
  CHECK_FALSE(batch.add(sender.fd, long_header, payload, receiver.to()));
  for (std::size_t i = 1; i < net::DatagramBatch::kCapacity; ++i) {
    REQUIRE(batch.add(sender.fd, {}, payload, receiver.to()));
  }
  CHECK_FALSE(batch.add(sender.fd, {}, payload, receiver.to()));

  CHECK(batch.flush().sent == net::DatagramBatch::kCapacity);
  CHECK(receiver.drain().size() == net::DatagramBatch::kCapacity);
  // Empty again: another socket may start the next batch.
  REQUIRE(batch.add(other.fd, {}, payload, receiver.to()));
  CHECK(batch.flush().sent == 1);
  CHECK(receiver.drain() == std::vector<std::string>{"x"});
}

TEST_CASE("datagram_batch_drops_only_the_datagram_whose_destination_fails") {
  LoopbackSocket sender, receiver;
  sockaddr_in port_zero = receiver.address;
  port_zero.sin_port = 0;  // the kernel refuses it (EINVAL) for this datagram alone
  net::DatagramBatch batch;
  const Bytes a = bytes_of("a"), b = bytes_of("bb"), c = bytes_of("ccc");
  REQUIRE(batch.add(sender.fd, {}, a, receiver.to()));
  REQUIRE(batch.add(sender.fd, {}, b, reinterpret_cast<const sockaddr*>(&port_zero)));
  REQUIRE(batch.add(sender.fd, {}, c, receiver.to()));

  const net::BatchResult result = batch.flush();
  CHECK(result.sent == 2);
  CHECK(result.sent_bytes == a.size() + c.size());
  CHECK(result.dropped == 1);
  CHECK(receiver.drain() == std::vector<std::string>{"a", "ccc"});
}

TEST_CASE("datagram_batch_sends_on_a_connected_socket_without_addresses") {
  LoopbackSocket sender, receiver;
  REQUIRE(::connect(sender.fd, receiver.to(), sizeof receiver.address) == 0);
  net::DatagramBatch batch;
  const Bytes payload = bytes_of("connected");
  REQUIRE(batch.add(sender.fd, bytes_of(">"), payload, nullptr));
  REQUIRE(batch.add(sender.fd, bytes_of(">"), payload, nullptr));
  const net::BatchResult result = batch.flush();
  CHECK(result.sent == 2);
  CHECK(receiver.drain() == std::vector<std::string>{">connected", ">connected"});
}

TEST_CASE("datagram_batch_flush_of_nothing_sends_nothing") {
  net::DatagramBatch batch;
  const net::BatchResult result = batch.flush();
  CHECK(result.sent == 0);
  CHECK(result.dropped == 0);
  CHECK(batch.fd() == -1);
}
