// The SOCKS5 UDP request header: one datagram per input.
#include "invariants.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tunsocks::socks;
  using tunsocks::socks::fuzz::expect;
  const ByteView in(data, size);
  const auto parsed = parse_udp_datagram(in);

  if (!parsed.has_value()) {
    const Error& error = parsed.error();
    expect(!error.field.empty() && error.reply == 0);
    if (error.code == Errc::truncated) {
      // Every cut of a truncated header is truncated too, where it ends.
      expect(error.offset == size);
      if (size > 0) {
        const auto shorter = parse_udp_datagram(in.first(size - 1));
        expect(!shorter.has_value() && shorter.error().code == Errc::truncated &&
               shorter.error().offset == size - 1);
      }
    } else {
      // Found at the offending byte, whatever follows it.
      expect(error.offset < size);
      const auto at = parse_udp_datagram(in.first(error.offset + 1));
      expect(!at.has_value() && at.error() == error);
    }
    return 0;
  }

  const UdpHeader& header = parsed->header;
  const ByteView payload = parsed->payload;
  expect(payload.data() + payload.size() == in.data() + in.size());
  const std::size_t header_size = size - payload.size();
  expect(header_size == 3 + encoded_size(header.address));
  (void)to_string(header.address);

  // The header without its last byte is truncated.
  const auto cut = parse_udp_datagram(in.first(header_size - 1));
  expect(!cut.has_value() && cut.error().code == Errc::truncated);

  // Both writers reproduce the header bytes, which parse back to the same header.
  Bytes appended;
  expect(append_udp_header(header, appended).has_value());
  expect(appended.size() == header_size &&
         std::equal(appended.begin(), appended.end(), in.begin()));
  Bytes buffer(header_size, 0xEE);
  const auto written = write_udp_header(header, buffer);
  expect(written.has_value() && *written == header_size && buffer == appended);
  const auto short_write = write_udp_header(header, std::span(buffer).first(header_size - 1));
  expect(!short_write.has_value() && short_write.error().code == Errc::buffer_too_small);
  const auto again = parse_udp_datagram(appended);
  expect(again.has_value() && again->header == header && again->payload.empty());
  return 0;
}
