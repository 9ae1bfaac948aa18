#include "tunnel/tun_io.h"

#include <array>
#include <cstring>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>

namespace {

using namespace tunsocks::tunnel;
using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kVnet = 10;

// A datagram socketpair stands in for the TUN: one read or write is one packet.
struct Pair {
  int fds[2] = {-1, -1};
  Pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, fds) == 0); }
  ~Pair() {
    ::close(fds[0]);
    ::close(fds[1]);
  }
  Bytes receive() const {
    Bytes buffer(70000);
    const ssize_t n = ::recv(fds[1], buffer.data(), buffer.size(), MSG_DONTWAIT);
    REQUIRE(n >= 0);
    buffer.resize(static_cast<std::size_t>(n));
    return buffer;
  }
  void send(const Bytes& bytes) const {
    REQUIRE(::send(fds[1], bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size()));
  }
};

std::uint16_t at16(const Bytes& bytes, std::size_t offset) {
  return static_cast<std::uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
}
std::uint16_t host16(const Bytes& bytes, std::size_t offset) {
  std::uint16_t value;
  std::memcpy(&value, bytes.data() + offset, 2);
  return value;
}

// A TCP segment 10.0.0.1:80 -> 10.0.0.2:40000 with `payload` bytes of data, checksum
// field zero (as lwIP leaves it with checksum offload).
Bytes ipv4_tcp(std::size_t payload) {
  Bytes packet(40 + payload);
  const std::size_t total = packet.size();
  const Bytes header = {0x45,
                        0,
                        static_cast<std::uint8_t>(total >> 8),
                        static_cast<std::uint8_t>(total),
                        0,
                        1,
                        0x40,
                        0,
                        64,
                        6,
                        0,
                        0,
                        10,
                        0,
                        0,
                        1,
                        10,
                        0,
                        0,
                        2,
                        0,
                        80,
                        0x9C,
                        0x40,
                        0,
                        0,
                        0,
                        1,
                        0,
                        0,
                        0,
                        1,
                        0x50,
                        0x18,
                        0xFF,
                        0xFF,
                        0,
                        0,
                        0,
                        0};
  std::copy(header.begin(), header.end(), packet.begin());
  for (std::size_t i = 40; i < total; ++i)
    packet[i] = static_cast<std::uint8_t>(i * 7);
  return packet;
}

// What the kernel does with "needs checksum": sums from csum_start to the end (the field
// holds the pseudo-header sum) and stores the complement at csum_start + csum_offset.
void kernel_completes(Bytes& packet, std::size_t start, std::size_t offset) {
  const std::uint16_t sum = internet_checksum(PacketView(packet).subspan(start));
  packet[start + offset] = static_cast<std::uint8_t>(sum >> 8);
  packet[start + offset + 1] = static_cast<std::uint8_t>(sum);
}

bool tcp_checksum_valid(const Bytes& packet) {
  const auto source = tunsocks::net::IpAddress::v4(std::array<std::uint8_t, 4>{10, 0, 0, 1});
  const auto destination = tunsocks::net::IpAddress::v4(std::array<std::uint8_t, 4>{10, 0, 0, 2});
  const std::uint32_t pseudo = pseudo_header_sum(source, destination, 6, packet.size() - 20);
  return internet_checksum(PacketView(packet).subspan(20), pseudo) == 0;
}

TEST_CASE("without the virtio-net header, packets pass as they are") {
  Pair pair;
  TunIo io(pair.fds[0], {.vnet_header = false, .checksum_offload = true, .mtu = 1500});
  CHECK_FALSE(io.framing().checksum_offload);  // needs the header
  CHECK(io.stack_mtu() == 1500);
  Bytes packet = ipv4_tcp(100);
  std::array<std::span<std::uint8_t>, 2> pieces{std::span(packet).first(50),
                                                std::span(packet).subspan(50)};
  CHECK(io.write(PacketPieces(pieces)) == 0);
  CHECK(pair.receive() == packet);

  pair.send(packet);
  auto read = io.read();
  REQUIRE(read);
  CHECK(Bytes(read->bytes.begin(), read->bytes.end()) == packet);
  CHECK_FALSE(read->checksum_trusted);

  CHECK(io.read().error() == EAGAIN);
}

TEST_CASE("checksum offload: lwIP's TCP packets leave the sum to the kernel") {
  Pair pair;
  TunIo io(pair.fds[0], {.vnet_header = true, .checksum_offload = true, .mtu = 1500});
  CHECK(io.stack_mtu() == 1500);  // no segmentation asked
  Bytes packet = ipv4_tcp(1000);
  std::array<std::span<std::uint8_t>, 2> pieces{std::span(packet).first(40),
                                                std::span(packet).subspan(40)};
  REQUIRE(io.write(PacketPieces(pieces)) == 0);
  Bytes out = pair.receive();
  REQUIRE(out.size() == kVnet + packet.size());
  CHECK(out[0] == 1);           // needs checksum
  CHECK(out[1] == 0);           // no segmentation
  CHECK(host16(out, 6) == 20);  // csum_start: the TCP header
  CHECK(host16(out, 8) == 16);  // csum_offset: its checksum field
  Bytes ip(out.begin() + kVnet, out.end());
  CHECK_FALSE(tcp_checksum_valid(ip));
  kernel_completes(ip, 20, 16);
  CHECK(tcp_checksum_valid(ip));

  SUBCASE("a packet we built has complete checksums: an all-zero header") {
    const Bytes reset = ipv4_tcp(0);
    REQUIRE(io.write(PacketView(reset)) == 0);
    const Bytes written = pair.receive();
    CHECK(Bytes(written.begin(), written.begin() + kVnet) == Bytes(kVnet, 0));
    CHECK(Bytes(written.begin() + kVnet, written.end()) == reset);
  }
  SUBCASE("anything but TCP goes out with a zero header") {
    Bytes udp = ipv4_tcp(8);
    udp[9] = 17;
    std::array<std::span<std::uint8_t>, 1> one{std::span(udp)};
    REQUIRE(io.write(PacketPieces(one)) == 0);
    const Bytes written = pair.receive();
    CHECK(Bytes(written.begin(), written.begin() + kVnet) == Bytes(kVnet, 0));
  }
}

TEST_CASE("segmentation: a TCP packet above the MTU is marked for cutting to the MSS") {
  Pair pair;
  TunIo io(pair.fds[0],
           {.vnet_header = true, .checksum_offload = true, .segmentation = true, .mtu = 1500});
  CHECK(io.stack_mtu() == 65535);
  Bytes big = ipv4_tcp(60000);
  std::array<std::span<std::uint8_t>, 1> one{std::span(big)};
  REQUIRE(io.write(PacketPieces(one)) == 0);
  Bytes out = pair.receive();
  REQUIRE(out.size() == kVnet + big.size());
  CHECK(out[0] == 1);
  CHECK(out[1] == 1);             // TCPv4
  CHECK(host16(out, 2) == 40);    // hdr_len: IP + TCP
  CHECK(host16(out, 4) == 1460);  // gso_size: MTU - headers
  CHECK(at16(out, kVnet + 2) == big.size());

  Bytes small = ipv4_tcp(1460);  // exactly the MTU: no cutting needed
  std::array<std::span<std::uint8_t>, 1> fits{std::span(small)};
  REQUIRE(io.write(PacketPieces(fits)) == 0);
  out = pair.receive();
  CHECK(out[0] == 1);
  CHECK(out[1] == 0);
}

TEST_CASE("reading: the kernel's flags say whether the checksum needs checking") {
  Pair pair;
  TunIo io(pair.fds[0], {.vnet_header = true, .checksum_offload = true, .mtu = 1500});
  const Bytes packet = ipv4_tcp(20);
  for (std::uint8_t flags : {0, 1, 2}) {
    CAPTURE(int{flags});
    Bytes framed(kVnet, 0);
    framed[0] = flags;
    framed.insert(framed.end(), packet.begin(), packet.end());
    pair.send(framed);
    auto read = io.read();
    REQUIRE(read);
    CHECK(Bytes(read->bytes.begin(), read->bytes.end()) == packet);
    CHECK(read->checksum_trusted == (flags != 0));
  }
  // Into a buffer of the caller's (lwIP's spare pbuf) when it can hold any packet.
  Bytes framed(kVnet, 0);
  framed.insert(framed.end(), packet.begin(), packet.end());
  pair.send(framed);
  Bytes spare(TunIo::kMaxPacket);
  auto into = io.read(spare);
  REQUIRE(into);
  CHECK(into->bytes.data() == spare.data());
  CHECK(Bytes(into->bytes.begin(), into->bytes.end()) == packet);
  pair.send(framed);
  Bytes too_small(100);
  into = io.read(too_small);  // a buffer that could not hold 64 KiB is not used
  REQUIRE(into);
  CHECK(into->bytes.data() != too_small.data());
  CHECK(Bytes(into->bytes.begin(), into->bytes.end()) == packet);

  pair.send(Bytes{1, 2, 3});  // shorter than the header
  auto read = io.read();
  REQUIRE(read);
  CHECK(read->bytes.empty());
}

TEST_CASE("complete_tcp_checksum turns a partial sum into the whole one") {
  Bytes packet = ipv4_tcp(33);  // odd length: the last byte is padded in the sum
  CHECK(complete_tcp_checksum(packet));
  CHECK(tcp_checksum_valid(packet));
  Bytes udp = ipv4_tcp(8);
  udp[9] = 17;
  CHECK_FALSE(complete_tcp_checksum(udp));
  Bytes cut = ipv4_tcp(0);
  cut.resize(30);
  CHECK_FALSE(complete_tcp_checksum(cut));
}

}  // namespace
