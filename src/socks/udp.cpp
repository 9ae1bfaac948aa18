// The SOCKS5 UDP request header (RFC 1928, section 7): RSV(2)=0, FRAG, then the address
// block, then the payload. A datagram is whole, so where a stream parser would wait for more
// bytes this one reports Errc::truncated.
#include <algorithm>

#include "socks/codec.h"
#include "socks/wire.h"

namespace tunsocks::socks {

namespace {

using wire::fail;

constexpr std::size_t kFixedSize = 3;  // RSV RSV FRAG

std::size_t header_size(const UdpHeader& header) {
  return kFixedSize + encoded_size(header.address);
}

void put_header(const UdpHeader& header, std::span<std::uint8_t> out) {
  out[0] = 0;
  out[1] = 0;
  out[2] = header.fragment;
  wire::put_address(header.address, out.subspan(kFixedSize));
}

}  // namespace

std::expected<UdpDatagram, Error> parse_udp_datagram(ByteView in) {
  for (std::size_t at = 0; at < std::min<std::size_t>(in.size(), 2); ++at) {
    if (in[at] != 0) return fail(Errc::bad_reserved, at, 0, "RSV");
  }
  if (in.size() < kFixedSize) {
    return fail(Errc::truncated, in.size(), 0, in.size() < 2 ? "RSV" : "FRAG");
  }

  auto block = wire::read_address(in, kFixedSize, wire::kDatagramAddress);
  if (!block) return std::unexpected(block.error());
  if (!block->address) return fail(Errc::truncated, in.size(), 0, block->short_field);
  return UdpDatagram{UdpHeader{in[2], std::move(*block->address)}, in.subspan(block->end)};
}

std::expected<std::size_t, Error> write_udp_header(const UdpHeader& header,
                                                   std::span<std::uint8_t> out) {
  if (auto ok = wire::check_encodable(header.address, "DST.ADDR"); !ok) {
    return std::unexpected(ok.error());
  }
  const std::size_t size = header_size(header);
  if (out.size() < size) return wire::refuse(Errc::buffer_too_small, "UDP header");
  put_header(header, out);
  return size;
}

std::expected<void, Error> append_udp_header(const UdpHeader& header, Bytes& out) {
  if (auto ok = wire::check_encodable(header.address, "DST.ADDR"); !ok) return ok;
  const std::size_t before = out.size();
  out.resize(before + header_size(header));
  put_header(header, std::span(out).subspan(before));
  return {};
}

}  // namespace tunsocks::socks
