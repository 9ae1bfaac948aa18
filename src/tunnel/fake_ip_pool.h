// The fake-ip pool (DESIGN.md, "DNS and names"): DNS answers for A and AAAA carry pool
// addresses, and a flow to a pool address goes upstream by name (ATYP 3), so the proxy
// resolves it. One index per name serves both families: 198.18.0.0/15 + index for A and
// fc00::/96 + (the same IPv4 address) for AAAA. The same name keeps its address while the
// entry lives; when the pool is full the least recently used entry that no open flow holds
// is recycled, so an address in use never starts meaning another name.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "net/ip.h"

namespace tunsocks::tunnel {

class FakeIpPool {
 public:
  static constexpr std::uint32_t kIpv4Base = 0xC6120000;  // 198.18.0.0
  // /15, minus 198.18.0.0 itself and the top address.
  static constexpr std::uint32_t kMaxCapacity = (1u << 17) - 2;

  explicit FakeIpPool(std::uint32_t capacity = kMaxCapacity);

  // The addresses for `name`: the index its two addresses are made from. nullopt when every
  // entry is held by an open flow.
  [[nodiscard]] std::optional<std::uint32_t> assign(std::string_view name);
  [[nodiscard]] static net::IpAddress ipv4(std::uint32_t index);
  [[nodiscard]] static net::IpAddress ipv6(std::uint32_t index);

  // Whether `address` lies in the pool's ranges (assigned or not).
  [[nodiscard]] bool contains(const net::IpAddress& address) const;
  // The name behind a pool address; nullptr when the address is not assigned.
  [[nodiscard]] const std::string* name_of(const net::IpAddress& address) const;
  // An open flow holds the entry of `address` (no-op outside the pool): it is not recycled
  // until released.
  void acquire(const net::IpAddress& address);
  void release(const net::IpAddress& address);

  [[nodiscard]] std::size_t size() const { return by_name_.size(); }
  [[nodiscard]] std::uint32_t refs(const net::IpAddress& address) const;

 private:
  struct Entry {
    std::string name;
    std::uint32_t refs = 0;
    bool assigned = false;
    std::list<std::uint32_t>::iterator recency;
  };

  [[nodiscard]] std::optional<std::uint32_t> index_of(const net::IpAddress& address) const;

  std::uint32_t capacity_;
  std::uint32_t next_unused_ = 1;
  std::vector<Entry> entries_;        // by index; [0] unused
  std::list<std::uint32_t> recency_;  // most recently used first
  std::unordered_map<std::string, std::uint32_t> by_name_;
};

}  // namespace tunsocks::tunnel
