/* lwIP's diagnostics and assertion failures go to stderr (declared in arch/cc.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "arch/cc.h"

void tunsocks_lwip_diag(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vfprintf(stderr, format, args);
  va_end(args);
}

void tunsocks_lwip_assert_failed(const char* message, const char* file, int line) {
  fprintf(stderr, "lwIP assertion failed at %s:%d: %s\n", file, line, message);
  fflush(stderr);
  abort();
}
