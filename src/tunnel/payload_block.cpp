#include "tunnel/payload_block.h"

#include "tunsocks_lwip_port.h"

namespace tunsocks::tunnel {

void PayloadBlockRelease::operator()(tunsocks_payload_block* block) const noexcept {
  tunsocks_payload_block_release(block);
}

ReferencingWrites::ReferencingWrites(tunsocks_payload_block* block) {
  tunsocks_lwip_set_write_block(block);
}

ReferencingWrites::~ReferencingWrites() {
  tunsocks_lwip_set_write_block(nullptr);
}

}  // namespace tunsocks::tunnel
