#include "tunnel/fake_ip_pool.h"

#include <algorithm>
#include <array>

namespace tunsocks::tunnel {
namespace {

constexpr std::array<std::uint8_t, 12> kIpv6Prefix{0xFC, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

}  // namespace

FakeIpPool::FakeIpPool(std::uint32_t capacity)
    : capacity_(std::clamp<std::uint32_t>(capacity, 1, kMaxCapacity)) {}

std::optional<std::uint32_t> FakeIpPool::assign(std::string_view name) {
  if (auto found = by_name_.find(std::string(name)); found != by_name_.end()) {
    Entry& entry = entries_[found->second];
    recency_.splice(recency_.begin(), recency_, entry.recency);
    return found->second;
  }
  std::uint32_t index = 0;
  if (next_unused_ <= capacity_) {
    index = next_unused_++;
    if (entries_.size() <= index) entries_.resize(std::size_t{index} + 1);
  } else {
    // The oldest entry no open flow holds: a held address keeps meaning its name.
    auto victim = std::find_if(recency_.rbegin(), recency_.rend(),
                               [this](std::uint32_t i) { return entries_[i].refs == 0; });
    if (victim == recency_.rend()) return std::nullopt;
    index = *victim;
    Entry& old = entries_[index];
    by_name_.erase(old.name);
    recency_.erase(old.recency);
    old = Entry{};
  }
  Entry& entry = entries_[index];
  entry.name = std::string(name);
  entry.assigned = true;
  recency_.push_front(index);
  entry.recency = recency_.begin();
  by_name_.emplace(entry.name, index);
  return index;
}

net::IpAddress FakeIpPool::ipv4(std::uint32_t index) {
  return net::IpAddress::v4(kIpv4Base + index);
}

net::IpAddress FakeIpPool::ipv6(std::uint32_t index) {
  std::array<std::uint8_t, 16> bytes{};
  std::copy(kIpv6Prefix.begin(), kIpv6Prefix.end(), bytes.begin());
  const std::uint32_t v4 = kIpv4Base + index;
  for (int i = 0; i < 4; ++i)
    bytes[12 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v4 >> (24 - 8 * i));
  return net::IpAddress::v6(bytes);
}

std::optional<std::uint32_t> FakeIpPool::index_of(const net::IpAddress& address) const {
  std::uint32_t v4 = 0;
  if (address.is_v4()) {
    v4 = address.v4_value();
  } else {
    const auto bytes = address.bytes();
    if (!std::equal(kIpv6Prefix.begin(), kIpv6Prefix.end(), bytes.begin())) return std::nullopt;
    v4 = std::uint32_t{bytes[12]} << 24 | std::uint32_t{bytes[13]} << 16 |
         std::uint32_t{bytes[14]} << 8 | bytes[15];
  }
  if ((v4 & 0xFFFE0000u) != kIpv4Base) return std::nullopt;
  return v4 - kIpv4Base;
}

bool FakeIpPool::contains(const net::IpAddress& address) const {
  return index_of(address).has_value();
}

const std::string* FakeIpPool::name_of(const net::IpAddress& address) const {
  auto index = index_of(address);
  if (!index || *index >= entries_.size() || !entries_[*index].assigned) return nullptr;
  return &entries_[*index].name;
}

void FakeIpPool::acquire(const net::IpAddress& address) {
  auto index = index_of(address);
  if (!index || *index >= entries_.size() || !entries_[*index].assigned) return;
  Entry& entry = entries_[*index];
  ++entry.refs;
  recency_.splice(recency_.begin(), recency_, entry.recency);
}

void FakeIpPool::release(const net::IpAddress& address) {
  auto index = index_of(address);
  if (!index || *index >= entries_.size() || entries_[*index].refs == 0) return;
  --entries_[*index].refs;
}

std::uint32_t FakeIpPool::refs(const net::IpAddress& address) const {
  auto index = index_of(address);
  if (!index || *index >= entries_.size()) return 0;
  return entries_[*index].refs;
}

}  // namespace tunsocks::tunnel
