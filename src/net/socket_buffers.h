// Socket buffers for datagram sockets that relay bursts. The kernel's default
// (net.core.rmem_default, 208 KiB) holds about 250 small datagrams: a few milliseconds at
// tens of thousands per second, less than one time slice of a busy machine, so a relay
// that is descheduled that long loses what arrives meanwhile.
#pragma once

namespace tunsocks::net {

// What the socket has after grow_socket_buffers (getsockopt's figures: the kernel doubles
// what it is asked for, for its bookkeeping).
struct SocketBuffers {
  int receive = 0;
  int send = 0;
};

// Asks for at least `bytes` of receive and of send buffer on the socket `fd`, never less
// than it has. SO_RCVBUFFORCE / SO_SNDBUFFORCE first: a process with CAP_NET_ADMIN may go
// beyond net.core.rmem_max / wmem_max, whose default (208 KiB) would make the request a
// no-op; without it, SO_RCVBUF / SO_SNDBUF, which the kernel caps at those maxima. Memory
// is charged only for datagrams actually queued. Returns the sizes the socket ended with;
// a socket that refuses both keeps its sizes (the relay works, with less slack).
SocketBuffers grow_socket_buffers(int fd, int bytes);

}  // namespace tunsocks::net
