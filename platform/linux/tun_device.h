// The Linux TUN device: open (or attach to) a layer-3 TUN interface without packet-info
// headers, configure its MTU and addresses, bring it up, and hand out a non-blocking fd.
// Errors are values that say what to do about them (missing module, no privileges, busy).
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <utility>

namespace tunsocks::platform {

struct TunError {
  int code = 0;         // errno
  std::string message;  // a full sentence for the user, naming the device and the fix
};

struct TunAddress {
  int family = 0;               // AF_INET or AF_INET6
  std::uint8_t bytes[16] = {};  // network order
  int prefix_length = 0;
};

struct TunConfig {
  std::string name = "tun0";
  int mtu = 0;                     // 0: leave as is
  std::optional<TunAddress> ipv4;  // assigned when set
  std::optional<TunAddress> ipv6;
  bool attach_only = false;  // the device exists (made by an admin); do not configure
  // Create the device inside this network namespace (a name under /run/netns, or a path)
  // while the process, and so every upstream socket, stays in its own: only that
  // namespace is routed through the proxy, and its routes cannot loop the upstream back.
  std::string netns;
  // Ask for the virtio-net header with checksum and segmentation offload (see
  // src/tunnel/tun_io.h); what the kernel grants is in TunDevice::offload().
  bool offload = true;
};

// What the device was opened with.
struct TunOffload {
  bool vnet_header = false;   // IFF_VNET_HDR: a virtio_net_hdr before every packet
  bool checksum = false;      // TUN_F_CSUM
  bool segmentation = false;  // TUN_F_TSO4 | TUN_F_TSO6
};

class TunDevice {
 public:
  // Creates the device if it does not exist (or attaches to an existing persistent one),
  // applies the configuration and brings the link up.
  [[nodiscard]] static std::expected<TunDevice, TunError> open(const TunConfig& config);

  TunDevice(TunDevice&& other) noexcept;
  TunDevice& operator=(TunDevice&&) = delete;
  TunDevice(const TunDevice&) = delete;
  ~TunDevice();

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] int mtu() const { return mtu_; }
  [[nodiscard]] int index() const { return index_; }
  [[nodiscard]] const TunOffload& offload() const { return offload_; }

 private:
  TunDevice(int fd, std::string name, int mtu, int index, TunOffload offload)
      : fd_(fd), name_(std::move(name)), mtu_(mtu), index_(index), offload_(offload) {}

  int fd_ = -1;
  std::string name_;
  int mtu_ = 0;
  int index_ = 0;
  TunOffload offload_;
};

}  // namespace tunsocks::platform
