// Packets to and from the TUN file descriptor, with or without the virtio-net header.
//
// With the header (IFF_VNET_HDR) the kernel and tunsocks tell each other two things per
// packet, and that is where most of the per-byte work of a local TUN goes:
// - Checksums (TUN_F_CSUM). A TCP packet the local kernel sends us carries only the
//   pseudo-header sum ("needs checksum"): it never crossed a wire, so there is nothing to
//   verify and nobody computes the sum. A TCP packet we write leaves its sum to the kernel
//   the same way, which skips it altogether for local delivery.
// - Segment size (TUN_F_TSO4/6). The kernel hands us TCP segments of up to 64 KiB whatever
//   the TUN's MTU, and takes such segments from us, cutting them to the MTU only if the
//   packet leaves the machine (GSO). One packet then does the work of forty.
// Without the header (offload off, a device that refuses it, tests on a socketpair) every
// packet is bare IP with complete checksums, as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <span>
#include <vector>

#include "tunnel/packet.h"

namespace tunsocks::tunnel {

// What the TUN device was opened with (platform/linux/tun_device negotiates it).
struct TunFraming {
  bool vnet_header = false;       // every read and write starts with a virtio_net_hdr
  bool checksum_offload = false;  // TCP checksums may stay partial both ways
  bool segmentation = false;      // TCP segments may exceed the MTU both ways (needs the above)
  int mtu = 1500;                 // the device's MTU: larger segments we write are cut to it
};

// One packet handed to the TUN in pieces: lwIP's pbuf chain, written with one writev. The
// first piece holds the IP and TCP headers; it is mutable because leaving the TCP checksum
// to the kernel means writing the pseudo-header sum into its field.
using PacketPieces = std::span<const std::span<std::uint8_t>>;

class TunIo {
 public:
  TunIo(int fd, TunFraming framing);

  struct Packet {
    std::span<std::uint8_t> bytes;
    // The kernel made this packet and says its transport checksum needs no checking (it
    // may hold only the pseudo-header sum).
    bool checksum_trusted = false;
  };
  // The largest packet a read can return.
  static constexpr std::size_t kMaxPacket = 65535;

  // The next packet, or an errno (EAGAIN: none waiting), read into `into` when it holds
  // kMaxPacket bytes (a buffer lwIP can adopt: LwipStack::receive_buffer), else into our
  // own. The bytes stay valid until the next read into the same buffer.
  [[nodiscard]] std::expected<Packet, int> read(std::span<std::uint8_t> into = {});

  // Writes one packet whose checksums are complete (built by us). 0 or an errno.
  int write(PacketView packet);
  // Writes one packet from lwIP. With checksum offload lwIP leaves TCP checksums out and
  // the kernel completes them; with segmentation a TCP packet above the MTU is marked for
  // cutting. 0 or an errno.
  int write(PacketPieces pieces);

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] const TunFraming& framing() const { return framing_; }
  // The MTU lwIP should segment for: the largest IP packet when the kernel segments.
  [[nodiscard]] int stack_mtu() const;

 private:
  int fd_;
  TunFraming framing_;
  std::vector<std::uint8_t> buffer_;
};

// For a SYN that arrived with a partial checksum and is fed to lwIP later, after the
// header that vouched for it is gone: computes the whole TCP checksum in place. False if
// the packet is not a complete TCP segment.
bool complete_tcp_checksum(std::span<std::uint8_t> packet);

}  // namespace tunsocks::tunnel
