#pragma once
// C++ handles for the payload blocks of tunsocks' lwIP port (third_party/lwip/port/
// payload_block.c, declared in tunsocks_lwip_port.h): buffers an upstream read fills and
// lwIP then sends from in place. No lwIP header here: flow interfaces name these types.

#include <memory>

extern "C" struct tunsocks_payload_block;

namespace tunsocks::tunnel {

struct PayloadBlockRelease {
  void operator()(tunsocks_payload_block* block) const noexcept;
};
// One reference to a block; the block itself lives until its last reference goes.
using PayloadBlockRef = std::unique_ptr<tunsocks_payload_block, PayloadBlockRelease>;

// While it exists, tcp_write without TCP_WRITE_FLAG_COPY references data inside `block`
// (each pbuf holding a reference) instead of needing it to outlive the connection.
class ReferencingWrites {
 public:
  explicit ReferencingWrites(tunsocks_payload_block* block);
  ~ReferencingWrites();
  ReferencingWrites(const ReferencingWrites&) = delete;
  ReferencingWrites& operator=(const ReferencingWrites&) = delete;
};

}  // namespace tunsocks::tunnel
