/*
 * lwIP hooks of the fuzz harness's lwIP (tunsocks_lwip_fuzz), never of production's.
 *
 * lwIP's own initial sequence number is a static counter advanced by every connection and
 * every timer tick since the process started, so a fuzz input's ACK numbers would match
 * lwIP's sequence space only in the run that found it. Here the harness sets the number
 * that every new connection starts from, so each input replays the same way.
 *
 * Included by lwIP's sources through LWIP_HOOK_FILENAME, and by the harness.
 */
#ifndef TUNSOCKS_LWIP_FUZZ_HOOKS_H
#define TUNSOCKS_LWIP_FUZZ_HOOKS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The initial sequence number of every connection accepted from now on. */
void tunsocks_lwip_fuzz_set_isn(uint32_t isn);
uint32_t tunsocks_lwip_fuzz_isn(void);

#ifdef __cplusplus
}
#endif

#define LWIP_HOOK_TCP_ISN(local_ip, local_port, remote_ip, remote_port) tunsocks_lwip_fuzz_isn()

#endif /* TUNSOCKS_LWIP_FUZZ_HOOKS_H */
