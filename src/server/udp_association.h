// One UDP ASSOCIATE (RFC 1928 section 7): the relay between a client's SOCKS-wrapped
// datagrams and the destinations they name.
//
// Sockets: the client talks to one socket bound to the address the client reached us on
// (port 0) — that address is what the reply's BND names. Datagrams to destinations leave
// from a socket per family bound to the wildcard address (opened on first use), so a
// client on a loopback listener can still reach the internet, and replies are told apart
// from client traffic by the socket they arrive on.
//
// Filtering: only datagrams from the client's IP are accepted, and from its port once
// known (announced in the request, or learned from the first datagram). Replies are
// accepted only from endpoints the client has sent to (port-restricted cone), and go back
// wrapped in a header naming their real source. FRAG != 0 is dropped (fragmentation is
// optional in the RFC and unused in practice); domain destinations are resolved off the
// loop with a small cache. Every drop is counted, never logged per datagram.
//
// Batches: each socket reads with recvmmsg (UV_UDP_RECVMMSG) into a buffer every
// association of the loop shares, and what one read brings in goes out with one
// sendmmsg per destination socket (net/datagram_batch.h) before the read's callbacks
// return. A datagram the kernel cannot take at once is dropped (that is what UDP does
// anyway), so no send queue can grow.
#pragma once

#include <cstdint>
#include <deque>
#include <expected>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <uv.h>

#include "net/datagram_batch.h"
#include "net/endpoint.h"
#include "net/uv_handle.h"
#include "server/counters.h"
#include "server/policy.h"
#include "socks/codec.h"

namespace tunsocks::server {

class UdpOwner {
 public:
  // Handles and requests of the association (the session counts them).
  virtual void udp_retain() = 0;
  virtual void udp_release() = 0;
  // Payload bytes relayed (activity for the idle timeout).
  virtual void udp_moved(bool up, std::size_t bytes) = 0;

 protected:
  ~UdpOwner() = default;
};

// What every association of one loop shares. Callbacks run one at a time and each
// leaves the batch empty behind it, so one of each serves them all.
class UdpShared {
 public:
  // Datagrams one recvmmsg call may bring: libuv reads into 64 KiB slots (its largest
  // datagram), at most 20. The buffer is allocated on first use and not written to
  // beforehand, so only the pages datagrams land in take memory.
  static constexpr std::size_t kReadSlots = 16;
  static constexpr std::size_t kSlotSize = 64 * 1024;

  uv_buf_t read_buffer();
  net::DatagramBatch& batch() { return batch_; }

 private:
  std::unique_ptr<char[]> read_buffer_;
  net::DatagramBatch batch_;
};

struct UdpContext {
  uv_loop_t* loop = nullptr;
  UdpShared* shared = nullptr;
  Counters* counters = nullptr;
  const Policy* policy = nullptr;
  bool protected_listener = false;
  net::IpAddress client_ip;
  std::string user;
  std::uint64_t session_id = 0;
};

class UdpAssociation {
 public:
  UdpAssociation(UdpOwner& owner, UdpContext context);
  UdpAssociation(const UdpAssociation&) = delete;
  UdpAssociation& operator=(const UdpAssociation&) = delete;
  ~UdpAssociation();

  // Opens the client-facing socket on `bind_ip`, port 0, and returns its address.
  // `client_port`: the port the client said it will send from (0: learn it).
  [[nodiscard]] std::expected<net::Endpoint, int> open(const net::IpAddress& bind_ip,
                                                       std::uint16_t client_port);
  // Closes every socket and cancels lookups. Idempotent.
  void close();

  [[nodiscard]] std::uint64_t up() const { return up_; }
  [[nodiscard]] std::uint64_t down() const { return down_; }

 private:
  struct EndpointHash {
    std::size_t operator()(const net::Endpoint& e) const noexcept {
      return net::IpAddressHash{}(e.ip) * 31 + e.port;
    }
  };
  struct Queued {
    std::vector<std::uint8_t> payload;
    std::uint16_t port = 0;
  };
  struct Lookup {
    uv_getaddrinfo_t req{};
    UdpAssociation* self = nullptr;
    std::string name;
    std::vector<Queued> queued;
  };
  struct CachedName {
    std::vector<net::IpAddress> addresses;
    std::uint64_t expires_ms = 0;
  };

  static void on_alloc(uv_handle_t* handle, std::size_t suggested, uv_buf_t* buf);
  static void on_client_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                             const sockaddr* addr, unsigned flags);
  static void on_outbound_recv(uv_udp_t* handle, ssize_t nread, const uv_buf_t* buf,
                               const sockaddr* addr, unsigned flags);
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result);
  static void on_handle_closed(void* self);

  // Every read callback of either socket; `from_client`: of the client-facing one.
  void received(bool from_client, ssize_t nread, const uv_buf_t* buf, const sockaddr* addr,
                unsigned flags);
  // One datagram from the client (SOCKS header first), or from a destination.
  void relay_up(socks::ByteView bytes, const sockaddr* addr, bool partial);
  void relay_down(socks::ByteView payload, const sockaddr* addr, bool partial);
  void resolved(Lookup& lookup, int status, addrinfo* result);

  // Queues one datagram for `socket` in the shared batch, sending the batch first when
  // it is for another socket or full.
  void queue(uv_udp_t* socket, socks::ByteView header, socks::ByteView payload, const sockaddr* to,
             bool up);
  // Sends the shared batch and counts what went (direction `batch_up_`) and what not.
  void flush();
  // Sends `payload` to the first of `addresses` the policy allows.
  void send_to_any(const std::vector<net::IpAddress>& addresses, std::uint16_t port,
                   std::string_view domain, socks::ByteView payload);
  void resolve(const std::string& name, std::uint16_t port, socks::ByteView payload);
  uv_udp_t* outbound_socket(bool v4);
  void remember_peer(const net::Endpoint& peer);
  void drop() { ++context_.counters->udp_datagrams_dropped; }

  UdpOwner& owner_;
  UdpContext context_;
  net::UvHandle<uv_udp_t> client_socket_;
  net::UvHandle<uv_udp_t> out4_;
  net::UvHandle<uv_udp_t> out6_;
  bool out4_failed_ = false;
  bool out6_failed_ = false;
  bool closed_ = false;
  bool warned_denial_ = false;
  bool batch_up_ = true;  // the direction of what this association has in the shared batch

  std::uint16_t client_port_ = 0;
  bool client_known_ = false;
  sockaddr_storage client_address_{};

  std::unordered_set<net::Endpoint, EndpointHash> peers_;
  std::deque<net::Endpoint> peer_order_;
  std::unordered_map<std::string, CachedName> names_;
  std::unordered_map<std::string, std::unique_ptr<Lookup>> lookups_;

  std::uint64_t up_ = 0;
  std::uint64_t down_ = 0;
};

}  // namespace tunsocks::server
