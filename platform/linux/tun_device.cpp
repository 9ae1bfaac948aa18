#include "platform/linux/tun_device.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <memory>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tunsocks::platform {
namespace {

constexpr int kTxQueueLength = 10000;

TunError error_for(int code, const std::string& what) {
  return TunError{code, what + ": " + std::strerror(code)};
}

// A short-lived socket for interface ioctls, closed on every path.
class IoctlSocket {
 public:
  explicit IoctlSocket(int family) : fd_(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
  ~IoctlSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  IoctlSocket(const IoctlSocket&) = delete;
  IoctlSocket& operator=(const IoctlSocket&) = delete;
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

// linux/ipv6.h's in6_ifreq, declared here because that header clashes with glibc's
// netinet/in.h depending on include order.
struct In6Ifreq {
  in6_addr ifr6_addr;
  std::uint32_t ifr6_prefixlen;
  int ifr6_ifindex;
};

ifreq request_for(const std::string& name) {
  ifreq request{};
  std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return request;
}

std::expected<void, TunError> set_ipv4(const std::string& name, const TunAddress& address) {
  IoctlSocket sock(AF_INET);
  if (sock.fd() < 0) return std::unexpected(error_for(errno, "socket(AF_INET)"));
  ifreq request = request_for(name);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  std::memcpy(&addr.sin_addr, address.bytes, 4);
  std::memcpy(&request.ifr_addr, &addr, sizeof addr);
  if (::ioctl(sock.fd(), SIOCSIFADDR, &request) < 0) {
    return std::unexpected(error_for(errno, "cannot set the IPv4 address of " + name));
  }
  std::uint32_t mask =
      address.prefix_length == 0 ? 0 : htonl(~std::uint32_t{0} << (32 - address.prefix_length));
  addr.sin_addr.s_addr = mask;
  std::memcpy(&request.ifr_netmask, &addr, sizeof addr);
  if (::ioctl(sock.fd(), SIOCSIFNETMASK, &request) < 0) {
    return std::unexpected(error_for(errno, "cannot set the IPv4 netmask of " + name));
  }
  return {};
}

std::expected<void, TunError> set_ipv6(const std::string& name, int index,
                                       const TunAddress& address) {
  IoctlSocket sock(AF_INET6);
  if (sock.fd() < 0) {
    return std::unexpected(error_for(errno, "socket(AF_INET6) (is IPv6 disabled?)"));
  }
  In6Ifreq request;
  std::memset(&request, 0, sizeof request);  // padding too: the kernel copies it all
  std::memcpy(&request.ifr6_addr, address.bytes, 16);
  request.ifr6_prefixlen = static_cast<std::uint32_t>(address.prefix_length);
  request.ifr6_ifindex = index;
  if (::ioctl(sock.fd(), SIOCSIFADDR, &request) < 0 && errno != EEXIST) {
    return std::unexpected(error_for(errno, "cannot set the IPv6 address of " + name +
                                                " (IPv6 may be disabled: sysctl net.ipv6.conf." +
                                                name + ".disable_ipv6)"));
  }
  return {};
}

// Asks for checksum and segmentation offload, then checksums alone, then nothing: an
// older or unusual kernel may refuse a flag, and the header works without any of them.
TunOffload negotiate_offload(int fd) {
  TunOffload offload{.vnet_header = true};
  if (::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0) {
    offload.checksum = offload.segmentation = true;
  } else if (::ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) == 0) {
    offload.checksum = true;
  }
  return offload;
}

}  // namespace

// Runs the calling thread in another network namespace until destroyed. Everything the
// device setup creates (the device, the ioctl sockets) belongs to the namespace it was
// made in; the TUN fd keeps working wherever the process returns to.
class NetnsScope {
 public:
  static std::expected<std::unique_ptr<NetnsScope>, TunError> enter(const std::string& netns) {
    const std::string path = netns.find('/') == std::string::npos ? "/run/netns/" + netns : netns;
    int target = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0) {
      return std::unexpected(error_for(
          errno, "cannot open network namespace " + path + " (create it with: ip netns add NAME)"));
    }
    int original = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original < 0 || ::setns(target, CLONE_NEWNET) < 0) {
      const int code = errno;
      ::close(target);
      if (original >= 0) ::close(original);
      return std::unexpected(error_for(code, "cannot enter network namespace " + path));
    }
    ::close(target);
    return std::unique_ptr<NetnsScope>(new NetnsScope(original));
  }
  ~NetnsScope() {
    // Returning cannot fail for a namespace we came from while holding its fd.
    ::setns(original_, CLONE_NEWNET);
    ::close(original_);
  }
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  explicit NetnsScope(int original) : original_(original) {}
  int original_;
};

std::expected<TunDevice, TunError> TunDevice::open(const TunConfig& config) {
  std::unique_ptr<NetnsScope> netns;
  if (!config.netns.empty()) {
    auto entered = NetnsScope::enter(config.netns);
    if (!entered) return std::unexpected(entered.error());
    netns = std::move(*entered);
  }
  if (config.name.empty() || config.name.size() >= IFNAMSIZ) {
    return std::unexpected(TunError{EINVAL, "TUN device name '" + config.name + "' must be 1 to " +
                                                std::to_string(IFNAMSIZ - 1) + " characters"});
  }
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int code = errno;
    if (code == ENOENT || code == ENODEV || code == ENXIO) {
      return std::unexpected(
          TunError{code,
                   "/dev/net/tun is missing: load the tun module (modprobe tun) or, in a "
                   "container, pass the device in (e.g. --device /dev/net/tun)"});
    }
    if (code == EACCES || code == EPERM) {
      return std::unexpected(
          TunError{code, "no permission to open /dev/net/tun: run as root or grant CAP_NET_ADMIN"});
    }
    return std::unexpected(error_for(code, "cannot open /dev/net/tun"));
  }

  ifreq request = request_for(config.name);
  // IFF_NO_PI: packets are bare IP, no 4-byte packet-information prefix to strip or add.
  request.ifr_flags = static_cast<short>(IFF_TUN | IFF_NO_PI | (config.offload ? IFF_VNET_HDR : 0));
  if (::ioctl(fd, TUNSETIFF, &request) < 0) {
    int code = errno;
    ::close(fd);
    if (code == EBUSY) {
      return std::unexpected(
          TunError{code, "TUN device " + config.name +
                             " is busy: another program has it open (pick another --tun name)"});
    }
    if (code == EPERM || code == EACCES) {
      return std::unexpected(
          TunError{code, "no permission to create or attach " + config.name +
                             ": needs CAP_NET_ADMIN, or a persistent device owned by this user"});
    }
    if (code == EINVAL) {
      return std::unexpected(TunError{
          code, config.name + " exists and is not a TUN device without packet information"});
    }
    return std::unexpected(error_for(code, "cannot create TUN device " + config.name));
  }
  std::string name = request.ifr_name;
  const TunOffload offload = config.offload ? negotiate_offload(fd) : TunOffload{};

  auto fail = [fd](TunError error) {
    ::close(fd);
    return std::unexpected(std::move(error));
  };

  IoctlSocket sock(AF_INET);
  if (sock.fd() < 0) return fail(error_for(errno, "socket(AF_INET)"));
  ifreq query = request_for(name);
  if (::ioctl(sock.fd(), SIOCGIFINDEX, &query) < 0) {
    return fail(error_for(errno, "cannot read the index of " + name));
  }
  int index = query.ifr_ifindex;

  if (!config.attach_only) {
    if (config.mtu > 0) {
      ifreq mtu = request_for(name);
      mtu.ifr_mtu = config.mtu;
      if (::ioctl(sock.fd(), SIOCSIFMTU, &mtu) < 0) {
        return fail(error_for(errno, "cannot set MTU " + std::to_string(config.mtu) + " on " +
                                         name + " (TUN allows 68..65535)"));
      }
    }
    // The queue holds packets the kernel routed into the TUN until tunsocks reads them.
    // The default 500 overflows when thousands of flows close at once, and a dropped RST
    // is never sent again; a longer queue costs memory only while it is actually full.
    ifreq queue = request_for(name);
    queue.ifr_qlen = kTxQueueLength;
    if (::ioctl(sock.fd(), SIOCSIFTXQLEN, &queue) < 0) {
      return fail(error_for(errno, "cannot set the queue length of " + name));
    }
    if (config.ipv4) {
      if (auto set = set_ipv4(name, *config.ipv4); !set) return fail(set.error());
    }
    ifreq flags = request_for(name);
    if (::ioctl(sock.fd(), SIOCGIFFLAGS, &flags) < 0) {
      return fail(error_for(errno, "cannot read the flags of " + name));
    }
    flags.ifr_flags = static_cast<short>(flags.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(sock.fd(), SIOCSIFFLAGS, &flags) < 0) {
      return fail(error_for(errno, "cannot bring " + name + " up"));
    }
    // IPv6 after the link is up: the kernel drops IPv6 addresses of a down interface.
    if (config.ipv6) {
      if (auto set = set_ipv6(name, index, *config.ipv6); !set) return fail(set.error());
    }
  }

  ifreq mtu = request_for(name);
  if (::ioctl(sock.fd(), SIOCGIFMTU, &mtu) < 0) {
    return fail(error_for(errno, "cannot read the MTU of " + name));
  }
  return TunDevice(fd, std::move(name), mtu.ifr_mtu, index, offload);
}

TunDevice::TunDevice(TunDevice&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      name_(std::move(other.name_)),
      mtu_(other.mtu_),
      index_(other.index_),
      offload_(other.offload_) {}

TunDevice::~TunDevice() {
  // Closing the last fd of a non-persistent TUN device removes it, with its addresses
  // and routes: nothing else to undo.
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace tunsocks::platform
