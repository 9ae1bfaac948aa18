/*
 * lwIP architecture glue for tunsocks (read by lwip/arch.h): byte order, diagnostics and
 * assertions. Types, printf formats and struct packing come from lwIP's defaults for a
 * C99 compiler with <stdint.h>/<inttypes.h> and GCC/Clang attributes.
 */
#ifndef TUNSOCKS_LWIP_ARCH_CC_H
#define TUNSOCKS_LWIP_ARCH_CC_H

/* On glibc and the BSDs this also defines BYTE_ORDER (via <sys/types.h>/<endian.h>) when
   the feature macros allow; include it first so our fallback below never collides. */
#include <stdlib.h>

#ifndef BYTE_ORDER
/* lwIP's own fallback is "little endian" whatever the target: ask the compiler instead. */
#if defined(__BYTE_ORDER__) && defined(__ORDER_BIG_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define BYTE_ORDER BIG_ENDIAN
#else
#define BYTE_ORDER LITTLE_ENDIAN
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* printf-style diagnostics from lwIP (LWIP_DEBUGF, LWIP_ERROR) to stderr; see port/diag.c. */
void tunsocks_lwip_diag(const char* format, ...) __attribute__((format(printf, 1, 2)));
/* A failed LWIP_ASSERT: prints file:line and the message to stderr, then aborts. */
void tunsocks_lwip_assert_failed(const char* message, const char* file, int line)
    __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

/* x is a parenthesised printf argument list, e.g. ("%d\n", n). */
#define LWIP_PLATFORM_DIAG(x) \
  do {                        \
    tunsocks_lwip_diag x;     \
  } while (0)
#define LWIP_PLATFORM_ASSERT(x) tunsocks_lwip_assert_failed((x), __FILE__, __LINE__)

#endif /* TUNSOCKS_LWIP_ARCH_CC_H */
